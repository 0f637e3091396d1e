package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tunmux/tunmux/apply"
	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
)

func (a *app) l2tpCommand() *cobra.Command {
	l2tp := &cobra.Command{
		Use:   "l2tp",
		Short: "The l2tp dataplane: L2TPv3 Ethernet pseudowires",
		Long: `The l2tp dataplane carries every frame of an Ethernet interface (IP, ARP, ND,
any ethertype, VLAN-tagged) to a peer LCCE in L2TPv3 data messages (RFC 3931),
over IP (protocol 115) or UDP, on an IPv4 or IPv6 underlay (docs/l2tp.md).`,
		Example: `  tunmux load l2tp
  tunmux attach l2tp-encap eth1     # the Ethernet side
  tunmux attach l2tp-decap eth0     # the tunnel side
  # see 'tunmux l2tp session add --help' for every flag
  tunmux l2tp session add --session-id 100 --peer-session-id 200 --encap udp \
      --local 172.16.0.1 --peer 172.16.0.2 --eth-iface eth1 --tunnel-iface eth0
  tunmux stats l2tp`,
	}
	session := &cobra.Command{
		Use:   "session",
		Short: "Add, update, get, delete and list L2TPv3 sessions",
		Example: `  tunmux l2tp session add --session-id 100 --peer-session-id 200 --encap ip \
      --local 172.16.0.1 --peer 172.16.0.2 --eth-iface eth1 --tunnel-iface eth0
  tunmux l2tp session list
  tunmux l2tp session update --session-id 100 --peer-cookie none
  tunmux l2tp session del --session-id 100`,
	}
	session.AddCommand(a.sessionPutCommand("add"), a.sessionPutCommand("update"),
		a.sessionKeyCommand("get"), a.sessionKeyCommand("del"), a.sessionListCommand())
	l2tp.AddCommand(session)
	return l2tp
}

func (a *app) sessionPutCommand(verb string) *cobra.Command {
	var args maps.SessionArgs
	cmd := &cobra.Command{
		Use:  verb + " --session-id N [flags]",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mode := apply.Create
			if verb == "update" {
				mode = apply.Modify
			}
			var s maps.Session
			doc := &apply.Document{L2TP: &apply.L2TPSection{Sessions: one(args)}}
			return a.write(dataplane.L2TPDataplane, doc, mode, nil, nil, func(*maps.Root) error {
				id, err := maps.ParseSessionID("--session-id", args.SessionID)
				if err != nil {
					return err
				}
				return a.getSession(id, &s)(nil)
			}, func() any { return sessionDetail(s) })
		},
	}
	if verb == "add" {
		cmd.Short = "Add a session (fails if its id exists)"
		cmd.Long = `Add an L2TPv3 session: every frame arriving on --eth-iface is carried to --peer
through --tunnel-iface, and data messages for --session-id from --peer are
delivered out of --eth-iface. One session per Ethernet interface.

The outer MAC addresses come from the kernel's routing and neighbour tables
(looked up by the program, cached for a second), or from --peer-mac. Without
--peer-mac, add asks the kernel to resolve the peer on the tunnel interface;
until the peer is known, non-IP frames (ARP) are dropped and counted, and IP
frames are handed to the kernel, which resolves the peer and sends them.

Leave room for the overhead: the Ethernet side's MTU must be the tunnel
interface's MTU minus the session's overhead (see docs/l2tp.md).`
		cmd.Example = `  # over UDP (port 1701 both ends), IPv4 underlay, 4-byte cookies
  tunmux l2tp session add --session-id 100 --peer-session-id 200 --encap udp \
      --local 172.16.0.1 --peer 172.16.0.2 --cookie 0a0b0c0d --peer-cookie 01020304 \
      --eth-iface eth1 --tunnel-iface eth0
  # over IP (protocol 115), IPv6 underlay, no cookie, no sublayer
  tunmux l2tp session add --session-id 7 --peer-session-id 7 --encap ip \
      --local fd00::1 --peer fd00::2 --l2spec none --eth-iface eth1 --tunnel-iface eth0`
	} else {
		cmd.Short = "Change fields of an existing session (fails if its id is missing)"
		cmd.Long = `Change an existing session: the flags given replace those fields, the others
are kept. --cookie none or --peer-cookie none removes a cookie; --peer-mac auto
returns to resolving the peer's MAC address.`
		cmd.Example = `  tunmux l2tp session update --session-id 100 --peer-cookie 0102030405060708`
	}
	fs := cmd.Flags()
	sessionIDFlag(fs, &args.SessionID)
	fs.StringVar(&args.PeerSessionID, "peer-session-id", "", "the session id this end sends (the peer's local id): 1..4294967295")
	fs.StringVar(&args.Encap, "encap", "", "encapsulation: ip (protocol 115) | udp")
	fs.StringVar(&args.Local, "local", "", "local underlay address, IP[:PORT] ([IPv6]:PORT); UDP port default 1701")
	fs.StringVar(&args.Peer, "peer", "", "peer underlay address, IP[:PORT] ([IPv6]:PORT); UDP port default 1701")
	fs.StringVar(&args.Cookie, "cookie", "", "cookie sent with every frame: 8 or 16 hex digits (default none)")
	fs.StringVar(&args.PeerCookie, "peer-cookie", "", "cookie expected on every received frame: 8 or 16 hex digits (default none)")
	fs.StringVar(&args.L2Spec, "l2spec", "", "L2-specific sublayer: default (4 bytes, as ip-l2tp's default) | none")
	fs.StringVar(&args.EthIface, "eth-iface", "", "the Ethernet-side interface whose frames the session carries")
	fs.StringVar(&args.TunnelIface, "tunnel-iface", "", "the interface towards the peer")
	fs.StringVar(&args.PeerMAC, "peer-mac", "", "the next hop's MAC address (default: resolved by the kernel)")
	return cmd
}

func sessionIDFlag(fs *pflag.FlagSet, dst *string) {
	fs.StringVar(dst, "session-id", "", "the local session id (the key; what the peer sends): 1..4294967295")
}

func (a *app) sessionKeyCommand(verb string) *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:  verb + " --session-id N",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sid, err := maps.ParseSessionID("--session-id", id)
			if err != nil {
				return err
			}
			var s maps.Session
			if verb == "get" {
				if err := a.getSession(sid, &s)(nil); err != nil {
					return err
				}
				return a.printer.Print(sessionDetail(s))
			}
			doc := &apply.Document{L2TP: &apply.L2TPSection{Sessions: one(maps.SessionArgs{SessionID: id})}}
			return a.write(dataplane.L2TPDataplane, doc, apply.Remove, nil, a.getSession(sid, &s), nil, func() any { return deletedSession(s) })
		},
	}
	if verb == "get" {
		cmd.Short = "Show one session with its counters (exit 3 if there is none)"
		cmd.Example = "  tunmux l2tp session get --session-id 100 -o json"
	} else {
		cmd.Short = "Delete a session (exit 3 if there is none)"
		cmd.Example = "  tunmux l2tp session del --session-id 100"
	}
	sessionIDFlag(cmd.Flags(), &id)
	return cmd
}

func (a *app) sessionListCommand() *cobra.Command {
	return listing(a, &cobra.Command{Use: "list", Short: "List every session with its counters", Example: "  tunmux l2tp session list -o json"},
		dataplane.OpenL2TP, func(l *dataplane.L2TP) ([]maps.Session, error) { return l.State.ListSessions() },
		func(s []maps.Session) sessionTable { return s })
}

type sessionTable []maps.Session

// Header is the default table's, within 80 columns; -o wide and 'l2tp
// session get' show every field.
func (t sessionTable) Header() []string {
	return []string{"session", "peer-id", "encap", "peer", "eth", "tunnel", "tx-pkts", "rx-pkts"}
}

func (t sessionTable) Rows() [][]string {
	rows := make([][]string, 0, len(t))
	for _, s := range t {
		c := s.Counters
		peer := s.Endpoint(s.Peer)
		if s.Peer.Port() == maps.DefaultL2TPPort {
			peer = s.Peer.Addr().String() // the port shows with -o wide when it is L2TP's own
		}
		rows = append(rows, []string{maps.IDString(s.ID), maps.IDString(s.PeerID), s.Encap.String(), peer,
			s.EthIface, s.TunnelIface, fmt.Sprint(c.TxPackets), fmt.Sprint(c.RxPackets)})
	}
	return rows
}

// WideHeader is -o wide's: every column.
func (t sessionTable) WideHeader() []string {
	return []string{"session", "peer-session", "encap", "local", "peer", "cookie", "peer-cookie", "l2spec", "eth", "tunnel", "tx-pkts", "tx-bytes", "rx-pkts", "rx-bytes", "drops"}
}

// WideRows are -o wide's rows.
func (t sessionTable) WideRows() [][]string {
	rows := make([][]string, 0, len(t))
	for _, s := range t {
		c := s.Counters
		rows = append(rows, []string{
			maps.IDString(s.ID), maps.IDString(s.PeerID), s.Encap.String(), s.Endpoint(s.Local), s.Endpoint(s.Peer),
			maps.CookieString(s.Cookie), maps.CookieString(s.PeerCookie), s.L2SpecString(), s.EthIface, s.TunnelIface,
			fmt.Sprint(c.TxPackets), fmt.Sprint(c.TxBytes), fmt.Sprint(c.RxPackets), fmt.Sprint(c.RxBytes), fmt.Sprint(c.Drops),
		})
	}
	return rows
}

type sessionDetail maps.Session

func (s sessionDetail) MarshalJSON() ([]byte, error) { return maps.Session(s).MarshalJSON() }

func (s sessionDetail) Text() string {
	x := maps.Session(s)
	peerMAC := "resolved by the kernel"
	if x.PeerMAC != nil {
		peerMAC = x.PeerMAC.String()
	}
	c := x.Counters
	lines := [][2]string{
		{"session", maps.IDString(x.ID)}, {"peer-session", maps.IDString(x.PeerID)},
		{"encap", x.Encap.String()}, {"local", x.Endpoint(x.Local)}, {"peer", x.Endpoint(x.Peer)},
		{"cookie", maps.CookieString(x.Cookie)}, {"peer-cookie", maps.CookieString(x.PeerCookie)},
		{"l2spec", x.L2SpecString()}, {"overhead", fmt.Sprintf("%d bytes (outer IP and L2TP headers)", x.Overhead())},
		{"eth-iface", fmt.Sprintf("%s (ifindex %d)", x.EthIface, x.EthIndex)},
		{"tunnel-iface", fmt.Sprintf("%s (ifindex %d)", x.TunnelIface, x.TunnelIndex)},
		{"peer-mac", peerMAC},
		{"tx", fmt.Sprintf("%d packets, %d bytes", c.TxPackets, c.TxBytes)},
		{"rx", fmt.Sprintf("%d packets, %d bytes", c.RxPackets, c.RxBytes)},
		{"drops", fmt.Sprint(c.Drops)},
	}
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%-14s %s\n", l[0]+":", l[1])
	}
	return b.String()
}

type deletedSession maps.Session

func (s deletedSession) MarshalJSON() ([]byte, error) { return maps.Session(s).MarshalJSON() }

func (s deletedSession) Text() string {
	x := maps.Session(s)
	return fmt.Sprintf("deleted session %d (%s, %s)", x.ID, x.Encap, netdev.Describe("", x.EthIface))
}

// getSession returns a read of session id into s.
func (a *app) getSession(id uint32, s *maps.Session) func(*maps.Root) error {
	return func(*maps.Root) error {
		return read(a, dataplane.OpenL2TP, func(l *dataplane.L2TP) error {
			var err error
			*s, err = l.State.GetSession(id)
			return err
		})
	}
}
