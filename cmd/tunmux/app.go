package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tunmux/tunmux/dataplane"
	"github.com/tunmux/tunmux/maps"
	"github.com/tunmux/tunmux/netdev"
	"github.com/tunmux/tunmux/render"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailed   = 1
	exitInvalid  = 2
	exitNotFound = 3
)

// app holds the global flags and the output writers of one invocation.
type app struct {
	out, errw   io.Writer
	bpffs       string
	output      string
	netns       string
	lockTimeout time.Duration
	printer     render.Printer
	// batch is the batch this command runs in, if any: its commands share
	// one lock.
	batch *batchState
}

// usageError is bad command-line syntax (unknown flag, wrong arguments): exit 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// run executes one tunmux command line and returns its exit code.
func run(args []string, stdout, stderr io.Writer) int {
	a := &app{out: stdout, errw: stderr}
	root := a.rootCommand(args)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	if a.output == "json" || (a.output == "" && jsonAsked(args)) {
		writeJSONError(stderr, code, err, a.withGlobals)
		return code
	}
	fmt.Fprintf(stderr, "tunmux: %s\n", a.withGlobals(indentJoined(err)))
	return code
}

// jsonAsked reports whether args ask for -o json (for errors met before
// the flags were parsed).
func jsonAsked(args []string) bool {
	for i, a := range args {
		switch {
		case a == "--":
			return false
		case a == "-ojson", a == "--output=json", a == "-o=json":
			return true
		case (a == "-o" || a == "--output") && i+1 < len(args) && args[i+1] == "json":
			return true
		}
	}
	return false
}

// jsonError is how an error is written under -o json (to standard error).
type jsonError struct {
	Code     int           `json:"code"`
	Message  string        `json:"message"`
	Flag     string        `json:"flag,omitempty"`
	Value    string        `json:"value,omitempty"`
	Accepted string        `json:"accepted,omitempty"`
	Problems []jsonProblem `json:"problems,omitempty"`
}

// jsonProblem is one of several problems of one command line.
type jsonProblem struct {
	Message  string `json:"message"`
	Flag     string `json:"flag,omitempty"`
	Value    string `json:"value,omitempty"`
	Accepted string `json:"accepted,omitempty"`
}

// writeJSONError writes {"error": {...}} on one line: the exit code, the
// message, and for bad input the flag, the value and the accepted form
// (each problem's, when there are several).
func writeJSONError(w io.Writer, code int, err error, hints func(string) string) {
	je := jsonError{Code: code, Message: hints(err.Error())}
	var inv *maps.InvalidError
	if errors.As(err, &inv) {
		je.Flag, je.Value, je.Accepted = inv.Flag, inv.Value, inv.Accepted
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 1 {
		je.Message = hints(indentJoined(err))
		for _, e := range j.Unwrap() {
			p := jsonProblem{Message: hints(e.Error())}
			if errors.As(e, &inv) {
				p.Flag, p.Value, p.Accepted = inv.Flag, inv.Value, inv.Accepted
			}
			je.Problems = append(je.Problems, p)
		}
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(map[string]jsonError{"error": je})
}

// pflagInvalid is how pflag reports a value its type refuses.
var pflagInvalid = regexp.MustCompile(`^invalid argument "(.*)" for "(?:-\w, )?(--[\w-]+)" flag: `)

// flagValueError turns pflag's report of a value its type refuses
// ('strconv.ParseUint: parsing "-1": invalid syntax') into one naming the
// flag and the form it accepts; other flag errors stay as they are.
func flagValueError(cmd *cobra.Command, err error) error {
	m := pflagInvalid.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	value, name := m[1], m[2]
	f := cmd.Flags().Lookup(strings.TrimPrefix(name, "--"))
	if f == nil {
		return err
	}
	accepted := map[string]string{
		"uint": "a whole number, 0 or more", "uint8": "a whole number from 0 to 255", "uint16": "a whole number from 0 to 65535",
		"uint32": "a whole number from 0 to 4294967295", "uint64": "a whole number, 0 or more",
		"int": "a whole number", "int32": "a whole number", "int64": "a whole number",
		"bool": "true or false", "duration": "a duration such as 500ms, 5s or 1m",
	}[f.Value.Type()]
	if a, ok := f.Annotations["accepted"]; ok && len(a) > 0 {
		accepted = a[0]
	}
	if accepted == "" {
		return err
	}
	return maps.Invalid(name, value, "is not a valid value", accepted)
}

// withGlobals makes the commands a message suggests ('tunmux load encap')
// carry the global flags this command was given (--bpffs, --netns), so
// that pasting one acts on the same root and namespace.
func (a *app) withGlobals(msg string) string {
	var g []string
	if a.bpffs != "" {
		g = append(g, "--bpffs", shellWord(a.bpffs))
	}
	if a.netns != "" {
		g = append(g, "--netns", shellWord(a.netns))
	}
	if len(g) == 0 {
		return msg
	}
	return strings.ReplaceAll(msg, "'tunmux ", "'tunmux "+strings.Join(g, " ")+" ")
}

// shellWord quotes s for a shell when it needs it (inside a message that
// already quotes the command with '...', with double quotes).
func shellWord(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == ':' || r == '=' || r == ',' || r == '+' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0 {
		return s
	}
	return strconv.Quote(s)
}

// exitCode maps an error to the documented exit codes.
func exitCode(err error) int {
	var u usageError
	switch {
	case errors.As(err, &u), errors.Is(err, maps.ErrInvalid):
		return exitInvalid
	case errors.Is(err, maps.ErrNotFound):
		return exitNotFound
	}
	return exitFailed
}

// indentJoined prints joined errors one per line.
func indentJoined(err error) string {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok || len(j.Unwrap()) < 2 {
		return err.Error()
	}
	lines := make([]string, 0, len(j.Unwrap()))
	for _, e := range j.Unwrap() {
		lines = append(lines, strings.ReplaceAll(e.Error(), "\n", "\n  "))
	}
	return fmt.Sprintf("%d problems:\n  %s", len(lines), strings.Join(lines, "\n  "))
}

// buildCommands are hidden commands for building tunmux rather than
// operating it, linked in only by a build tag (man.go: -tags mangen), so
// that the binary operators run does not pay for their packages' init.
var buildCommands []func(*app) *cobra.Command

// rootCommand builds the command tree for args: when args name one of the
// top-level commands, only that command's subtree is built (a short-lived
// command pays for its own flags, not for all of tunmux's); otherwise
// (help, completion, no command, a typo) the whole tree.
func (a *app) rootCommand(args []string) *cobra.Command {
	root := &cobra.Command{
		Use:   "tunmux",
		Short: "Load eBPF tunnel dataplanes and manage their pinned state",
		Long: `tunmux loads eBPF tunnel dataplanes (XDP and TC programs) into the kernel, pins
their programs, maps and links under a bpffs root, and manages their entries
with short-lived commands. There is no daemon: all state lives in bpffs.

Dataplanes: ` + strings.Join(dataplane.Names(), ", ") + `.

Exit codes: 0 ok, 1 operation failed, 2 invalid input (nothing changed), 3 not found.`,
		Example: `  # a first tunnel (see 'tunmux tunnel add --help' for every flag)
  tunmux load encap
  tunmux attach encap veth-wl        # frames from the workload arrive here
  tunmux attach decap eth0           # tunnelled frames arrive here
  tunmux tunnel add --inner-src 10.0.0.1 --inner-dst 10.0.0.2 --proto vxlan --vni 100 \
      --outer-src 192.168.1.1 --outer-dst 192.168.1.2 --dst-mac 02:00:00:00:00:02 \
      --underlay eth0 --overlay veth-wl
  tunmux status`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.setup(cmd)
		},
	}
	cobra.AddTemplateFunc("tunmuxVersion", func() string { return readVersion().Text() })
	root.SetVersionTemplate("{{tunmuxVersion}}")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError{flagValueError(cmd, err)} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.bpffs, "bpffs", "", "bpffs root of tunmux's pinned state (env "+maps.RootEnv+", default "+maps.DefaultRootPath+")")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table (80 columns), wide (every column), or json")
	pf.StringVar(&a.netns, "netns", "", "resolve and attach interfaces inside this network namespace: a name (ip netns) or a path (/proc/PID/ns/net), keeping the host bpffs")
	pf.DurationVar(&a.lockTimeout, "lock-timeout", maps.DefaultLockTimeout, "how long a mutating command waits for the lock on the bpffs root")

	commands := []struct {
		name  string
		build func() *cobra.Command
	}{
		{"load", a.loadCommand}, {"unload", a.unloadCommand}, {"attach", a.attachCommand}, {"detach", a.detachCommand},
		{"tunnel", a.tunnelCommand}, {"devmap", a.devmapCommand}, {"l2tp", a.l2tpCommand}, {"xconnect", a.xconnectCommand},
		{"mux", a.muxCommand}, {"route", a.routeCommand}, {"peer", a.peerCommand}, {"apply", a.applyCommand},
		{"export", a.exportCommand}, {"batch", a.batchCommand}, {"stats", a.statsCommand}, {"status", a.statusCommand},
		{"capture", a.captureCommand}, {"monitor", a.monitorCommand}, {"doctor", a.doctorCommand},
		{"metrics", a.metricsCommand}, {"serve", a.serveCommand}, {"version", a.versionCommand},
	}
	word := commandWord(pf, args)
	built := false
	for _, c := range commands {
		if c.name == word {
			root.AddCommand(c.build())
			built = true
		}
	}
	if !built {
		for _, c := range commands {
			root.AddCommand(c.build())
		}
	}
	for _, build := range buildCommands {
		root.AddCommand(build(a))
	}
	wrapArgs(root)
	if word == "__complete" || word == "__completeNoDesc" {
		a.addCompletions(root) // only when a shell asks: they read the machine
	}
	return root
}

// commandWord returns the first argument that is not a global flag or its
// value: the top-level command args name ("" when there is none).
func commandWord(global *pflag.FlagSet, args []string) string {
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			return ""
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			return arg
		}
		if strings.Contains(arg, "=") {
			continue
		}
		var f *pflag.Flag
		if strings.HasPrefix(arg, "--") {
			f = global.Lookup(arg[2:])
		} else if len(arg) == 2 {
			f = global.ShorthandLookup(arg[1:])
		}
		if f == nil {
			return "" // a flag the root does not know: let cobra say so
		}
		if f.NoOptDefVal == "" {
			i++ // its value
		}
	}
	return ""
}

// wrapArgs makes argument-count errors usage errors (exit 2) everywhere.
func wrapArgs(c *cobra.Command) {
	if c.Args != nil {
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usageError{fmt.Errorf("%s: %w (usage: %s)", cmd.CommandPath(), err, cmd.UseLine())}
			}
			return nil
		}
	}
	if c.HasSubCommands() && c.RunE == nil {
		// A group called without a subcommand (or with an unknown one).
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				hint := ""
				cmd.SuggestionsMinimumDistance = 2 // typos of up to two letters, and prefixes
				if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
					hint = fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
				}
				return usageError{fmt.Errorf("unknown command %q for %s%s; see '%s --help'", args[0], cmd.CommandPath(), hint, cmd.CommandPath())}
			}
			return nil
		}
		c.RunE = func(cmd *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("%s needs a subcommand; see '%s --help'", cmd.CommandPath(), cmd.CommandPath())}
		}
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}

// setup validates the global flags.
func (a *app) setup(cmd *cobra.Command) error {
	output := a.output
	if cmd.Name() == "export" {
		// export writes a desired-state file: YAML (the default) or JSON.
		if output != "yaml" && output != "json" && output != "table" {
			return maps.Invalid("-o", output, "unknown format for export", "yaml|json")
		}
		if output != "json" {
			output = "table"
		}
	}
	f, err := render.ParseFormat(output)
	if err != nil {
		return err
	}
	a.printer = render.Printer{W: a.out, Format: f}
	if a.lockTimeout < 0 {
		return maps.Invalid("--lock-timeout", a.lockTimeout.String(), "is negative", "a duration like 5s or 500ms")
	}
	if _, err := maps.OpenRoot(maps.RootPath(a.bpffs), false); err != nil {
		return err
	}
	if a.netns != "" {
		if !netdev.NamespaceExists(a.netns) {
			return maps.Invalid("--netns", a.netns, "no such network namespace", "a name listed by 'ip netns list', or the path of a namespace file such as /var/run/netns/NAME or /proc/PID/ns/net")
		}
	}
	return nil
}

// root opens the bpffs root for reading (it need not exist).
func (a *app) root() *maps.Root {
	r, _ := maps.OpenRoot(maps.RootPath(a.bpffs), false)
	return r
}

// mutate runs fn holding the lock on the root. With create, the root (and
// the bpffs mount) is created when missing; otherwise a missing root means
// nothing is loaded.
func (a *app) mutate(create bool, dp *dataplane.Dataplane, fn func(*maps.Lock) error) error {
	root, err := maps.OpenRoot(maps.RootPath(a.bpffs), create)
	if err != nil {
		return err
	}
	if !root.Exists() {
		return fmt.Errorf("%s under %s: %w (run 'tunmux load %s')", dp.Name, root.Path, maps.ErrNotLoaded, dp.Name)
	}
	lock, release, err := a.lockRoot(root)
	if err != nil {
		return err
	}
	defer release()
	return fn(lock)
}

// lockRoot takes the lock on root (release gives it up); in a batch, the
// lock the batch holds on it, kept until the batch ends.
func (a *app) lockRoot(root *maps.Root) (lock *maps.Lock, release func(), err error) {
	if a.batch == nil {
		lock, err = root.Lock(a.lockTimeout)
		if err != nil {
			return nil, nil, err
		}
		a.warnTightened(lock)
		return lock, func() {
			held := lock.Held()
			lock.Release()
			a.traceLock(lock, held)
		}, nil
	}
	lock, err = a.batch.lockOn(root, a)
	return lock, func() {}, err
}

// LockTraceEnv names the environment variable that, set to 1, makes each
// command that takes the lock say on standard error how long it waited for
// it and held it (make bench's concurrent-writers run reads it).
const LockTraceEnv = "TUNMUX_LOCK_TRACE"

// traceLock says how long lock was waited for and held, when asked to.
func (a *app) traceLock(lock *maps.Lock, held time.Duration) {
	if os.Getenv(LockTraceEnv) == "1" {
		fmt.Fprintf(a.errw, "tunmux: lock on %s: waited %dus, held %dus\n", lock.Root().Path, lock.Waited.Microseconds(), held.Microseconds())
	}
}

// warnTightened warns that taking lock narrowed the root's mode.
func (a *app) warnTightened(lock *maps.Lock) {
	if lock.Tightened != "" {
		a.warn(lock.Tightened)
	}
}

// jsonOf encodes v as JSON.
func jsonOf(v any) ([]byte, error) { return json.Marshal(v) }

// warn prints a warning to standard error.
func (a *app) warn(msgs ...string) {
	for _, m := range msgs {
		fmt.Fprintf(a.errw, "tunmux: warning: %s\n", a.withGlobals(m))
	}
}
