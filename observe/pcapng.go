package observe

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// pcapng block types and options (draft-ietf-opsawg-pcapng).
const (
	blockSHB       = 0x0A0D0D0A
	blockIDB       = 0x00000001
	blockEPB       = 0x00000006
	byteOrderMagic = 0x1A2B3C4D
	optEnd         = 0
	optComment     = 1
	optIfName      = 2
	optIfDesc      = 3
	optIfTsresol   = 9
	optShbUserAppl = 4
	linkEthernet   = 1
	linkRaw        = 101
)

// PcapngWriter writes records as pcapng: one interface block per program,
// interface and place (entry or exit), each packet with a comment naming
// the program, the place and the outcome. Timestamps are in nanoseconds.
type PcapngWriter struct {
	w      *bufio.Writer
	ifaces map[ifaceKey]uint32
	snap   uint32
}

type ifaceKey struct {
	prog, iface string
	where       Where
	l3          bool
}

// NewPcapngWriter writes the section header to w; snaplen is recorded in
// each interface block.
func NewPcapngWriter(w io.Writer, snaplen uint32) (*PcapngWriter, error) {
	p := &PcapngWriter{w: bufio.NewWriter(w), ifaces: map[ifaceKey]uint32{}, snap: snaplen}
	var body []byte
	body = binary.LittleEndian.AppendUint32(body, byteOrderMagic)
	body = binary.LittleEndian.AppendUint16(body, 1) // version 1.0
	body = binary.LittleEndian.AppendUint16(body, 0)
	body = binary.LittleEndian.AppendUint64(body, ^uint64(0)) // section length unknown
	body = appendOption(body, optShbUserAppl, []byte("tunmux capture"))
	body = appendOption(body, optEnd, nil)
	if err := p.block(blockSHB, body); err != nil {
		return nil, err
	}
	return p, p.w.Flush()
}

// Write adds one record (an entry or exit frame; events are written too,
// as frames of their own interface block).
func (p *PcapngWriter) Write(r Record) error {
	k := ifaceKey{prog: r.Program, iface: r.Iface, where: r.Where, l3: r.L3}
	id, ok := p.ifaces[k]
	if !ok {
		id = uint32(len(p.ifaces))
		p.ifaces[k] = id
		link := uint16(linkEthernet)
		if r.L3 {
			link = linkRaw
		}
		var body []byte
		body = binary.LittleEndian.AppendUint16(body, link)
		body = binary.LittleEndian.AppendUint16(body, 0)
		body = binary.LittleEndian.AppendUint32(body, p.snap)
		body = appendOption(body, optIfName, []byte(fmt.Sprintf("%s:%s:%s", r.Iface, r.Program, r.Where)))
		body = appendOption(body, optIfDesc, []byte(fmt.Sprintf("tunmux %s program %s on %s, frames at its %s", r.Dataplane, r.Program, r.Iface, r.Where)))
		body = appendOption(body, optIfTsresol, []byte{9})
		body = appendOption(body, optEnd, nil)
		if err := p.block(blockIDB, body); err != nil {
			return err
		}
	}
	ts := uint64(r.Time.UnixNano())
	var body []byte
	body = binary.LittleEndian.AppendUint32(body, id)
	body = binary.LittleEndian.AppendUint32(body, uint32(ts>>32))
	body = binary.LittleEndian.AppendUint32(body, uint32(ts))
	body = binary.LittleEndian.AppendUint32(body, uint32(len(r.Data)))
	body = binary.LittleEndian.AppendUint32(body, r.Length)
	body = append(body, r.Data...)
	body = pad4(body)
	body = appendOption(body, optComment, []byte(r.Comment()))
	body = appendOption(body, optEnd, nil)
	return p.block(blockEPB, body)
}

// Flush writes what is buffered.
func (p *PcapngWriter) Flush() error { return p.w.Flush() }

func (p *PcapngWriter) block(typ uint32, body []byte) error {
	n := uint32(12 + len(body))
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, typ)
	b = binary.LittleEndian.AppendUint32(b, n)
	b = append(b, body...)
	b = binary.LittleEndian.AppendUint32(b, n)
	_, err := p.w.Write(b)
	return err
}

func appendOption(b []byte, code uint16, v []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, code)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
	return pad4(append(b, v...))
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
