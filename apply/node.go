package apply

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
	"unsafe"

	"gopkg.in/yaml.v3"
)

// node is a parsed document's tree, as Parse reads it: what yaml.v3 makes
// of a YAML file, or what scanJSON makes of a JSON one directly. yaml.v3
// takes about 2 s and 500 MB for a file of 100,000 tunnels; scanJSON takes
// a tenth of that, with the same kinds, tags, values and lines.
type node struct {
	Kind    yaml.Kind
	Tag     string
	Value   string
	Line    int
	Content []*node
	// lazy: a list of a section (encap.tunnels, ...), checked but not kept
	// as nodes: each walks its items one at a time, so that a file of
	// 100,000 entries never holds 2,000,000 nodes at once.
	lazy *lazyList
}

// lazyList is a list read again an item at a time: how many items it has,
// and how to walk them (each item made in an arena reused for the next).
type lazyList struct {
	count int
	walk  func(fn func(i int, item *node))
}

// length is the number of items of a sequence (or entries of a mapping,
// twice).
func (n *node) length() int {
	if n.lazy != nil {
		return n.lazy.count
	}
	return len(n.Content)
}

// each calls fn with each item of a sequence, in order. An item of a lazy
// list lives until fn returns: fn keeps its values, never the node.
func (n *node) each(fn func(i int, item *node)) {
	if n.lazy == nil {
		for i, item := range n.Content {
			fn(i, item)
		}
		return
	}
	if n.lazy.count > 0 {
		n.lazy.walk(fn)
	}
}

// walkJSON walks the items of the JSON list whose '[' is at pos.
func walkJSON(data []byte, pos, line, count int) func(fn func(i int, item *node)) {
	return func(fn func(i int, item *node)) {
		arena := &nodes{}
		s := &jsonScanner{data: data, pos: pos + 1, line: line, alloc: arena}
		for i := 0; i < count; i++ {
			arena.reset()
			item, err := s.value()
			if err != nil {
				// The text was checked when the list was first read.
				panic(fmt.Sprintf("apply: a JSON list checked once fails again: %v", err))
			}
			fn(i, item)
			s.next(']')
		}
	}
}

// nodes hands out nodes, and the lists of a node's children, from slabs:
// one allocation per thousand nodes instead of one (and a few for a
// growing list) a node.
type nodes struct {
	first, slab []node
	firstPtrs   []*node
	ptrs        []*node
}

// list copies children into a list of their own size.
func (a *nodes) list(children []*node) []*node {
	if len(children) == 0 {
		return nil
	}
	if len(a.ptrs)+len(children) > cap(a.ptrs) {
		a.ptrs = make([]*node, 0, max(4096, len(children)))
		if a.firstPtrs == nil {
			a.firstPtrs = a.ptrs
		}
	}
	start := len(a.ptrs)
	a.ptrs = append(a.ptrs, children...)
	return a.ptrs[start:len(a.ptrs):len(a.ptrs)]
}

func (a *nodes) new(n node) *node {
	if len(a.slab) == cap(a.slab) {
		a.slab = make([]node, 0, 1024)
		if a.first == nil {
			a.first = a.slab
		}
	}
	a.slab = append(a.slab, n)
	return &a.slab[len(a.slab)-1]
}

// reset hands the first slabs out again (what they held is dead).
func (a *nodes) reset() {
	a.slab, a.ptrs = a.first[:0], a.firstPtrs[:0]
}

// fromYAML copies yaml.v3's tree (a document node's content).
func fromYAML(a *nodes, y *yaml.Node) *node {
	if y.Kind == yaml.AliasNode && y.Alias != nil {
		// *name stands for what &name marks (at the anchor's lines).
		return fromYAML(a, y.Alias)
	}
	n := a.new(node{Kind: y.Kind, Tag: y.Tag, Value: y.Value, Line: y.Line})
	if len(y.Content) > 0 {
		n.Content = make([]*node, len(y.Content))
		for i, c := range y.Content {
			n.Content[i] = fromYAML(a, c)
		}
	}
	return n
}

// parseTree reads data as JSON when it is a JSON object (the fast path),
// else as YAML: the subset yamlFast reads, or yaml.v3 for the rest; errors
// are yaml.v3's (a file that is not valid JSON is read as YAML, which JSON
// is a subset of).
func parseTree(data []byte) (top *node, empty bool, err error) {
	if err := plainText(data); err != nil {
		return nil, false, err
	}
	a := &nodes{}
	if s := (&jsonScanner{data: data, line: 1, alloc: a}); s.looksLikeJSON() {
		// The scanner's strings share data's bytes instead of a copy each
		// (two million in a file of 100,000 tunnels): see Parse.
		top, err := s.document()
		if err == nil {
			return top, false, nil
		}
		if s.strictJSON() {
			// A JSON document ('{' then a quoted key) is JSON: YAML would
			// take what JSON refuses (a trailing comma) without a word.
			return nil, false, fmt.Errorf("yaml: line %d: not valid JSON (a trailing comma, a missing quote or bracket?)", s.line)
		}
	}
	if top, err := yamlFast(data, a); err == nil {
		return top, false, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true, nil
		}
		return nil, false, err
	}
	// One document: a second one would be ignored, so it is an error.
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		line := next.Line
		if err != nil || line == 0 {
			line = 1
		}
		return nil, false, fmt.Errorf("yaml: line %d: a second YAML document (after ---): a file holds one", line)
	}
	if len(root.Content) == 0 {
		return nil, true, nil
	}
	return fromYAML(a, root.Content[0]), false, nil
}

// plainText refuses what is not UTF-8 text: a UTF-16 or UTF-32 file (a BOM,
// or NUL bytes), or other binary data, which YAML would read as one odd
// string or nothing.
func plainText(data []byte) error {
	switch {
	case bytes.HasPrefix(data, []byte{0xff, 0xfe}), bytes.HasPrefix(data, []byte{0xfe, 0xff}):
		return errors.New("yaml: line 1: the file is UTF-16 (a byte-order mark); save it as UTF-8")
	case bytes.IndexByte(data, 0) >= 0:
		return fmt.Errorf("yaml: line %d: a NUL byte: the file is not UTF-8 text (UTF-16 or binary?)", 1+bytes.Count(data[:bytes.IndexByte(data, 0)], []byte{'\n'}))
	case !utf8.Valid(data):
		return errors.New("yaml: line 1: the file is not valid UTF-8 text")
	}
	return nil
}

// jsonScanner reads one JSON value into nodes, counting lines. Strings
// without escapes refer to data, which must not change afterwards.
type jsonScanner struct {
	data  []byte
	pos   int
	line  int
	alloc *nodes
	depth int  // of the value being read: 0 for the document
	check bool // reading a lazy list's items: check them, keep nothing
	// children of the lists and mappings being read, innermost last
	stack []*node
}

// checked is what value returns while it keeps nothing.
var checked = &node{}

func (s *jsonScanner) node(n node) *node {
	if s.check {
		return checked
	}
	return s.alloc.new(n)
}

// errJSON is any syntax error: the caller reads the file as YAML instead,
// whose parser says what is wrong.
var errJSON = fmt.Errorf("not JSON")

// strictJSON reports whether the document is JSON by its look: '{' and
// then '"' (a quoted key) or '}'. Its errors are JSON's, not YAML's.
func (s *jsonScanner) strictJSON() bool {
	i := bytes.IndexByte(s.data, '{')
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(s.data[i+1:], " \t\r\n")
	return len(rest) > 0 && (rest[0] == '"' || rest[0] == '}')
}

func (s *jsonScanner) looksLikeJSON() bool {
	s.space()
	return s.pos < len(s.data) && s.data[s.pos] == '{'
}

func (s *jsonScanner) document() (*node, error) {
	n, err := s.value()
	if err != nil {
		return nil, err
	}
	if s.space(); s.pos != len(s.data) {
		return nil, errJSON
	}
	return n, nil
}

func (s *jsonScanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case '\n':
			s.line++
		case ' ', '\t', '\r':
		default:
			return
		}
		s.pos++
	}
}

func (s *jsonScanner) value() (*node, error) {
	s.space()
	if s.pos >= len(s.data) {
		return nil, errJSON
	}
	line := s.line
	switch c := s.data[s.pos]; {
	case c == '{':
		s.depth++
		mark := len(s.stack)
		n, err := s.object(line, mark)
		s.depth, s.stack = s.depth-1, s.stack[:mark]
		return n, err
	case c == '[':
		s.depth++
		mark := len(s.stack)
		n, err := s.array(line, mark)
		s.depth, s.stack = s.depth-1, s.stack[:mark]
		return n, err
	case c == '"':
		str, err := s.str()
		if err != nil {
			return nil, err
		}
		return s.node(node{Kind: yaml.ScalarNode, Tag: "!!str", Value: str, Line: line}), nil
	case c == '-' || c >= '0' && c <= '9':
		start, tag := s.pos, "!!int"
		for s.pos < len(s.data) && strings.IndexByte("+-0123456789.eE", s.data[s.pos]) >= 0 {
			if strings.IndexByte(".eE", s.data[s.pos]) >= 0 {
				tag = "!!float"
			}
			s.pos++
		}
		lit := string(s.data[start:s.pos])
		if !json.Valid([]byte(lit)) {
			return nil, errJSON
		}
		return s.node(node{Kind: yaml.ScalarNode, Tag: tag, Value: lit, Line: line}), nil
	default:
		for _, w := range [...]struct{ lit, tag string }{{"true", "!!bool"}, {"false", "!!bool"}, {"null", "!!null"}} {
			if strings.HasPrefix(string(s.data[s.pos:min(s.pos+5, len(s.data))]), w.lit) {
				s.pos += len(w.lit)
				return s.node(node{Kind: yaml.ScalarNode, Tag: w.tag, Value: w.lit, Line: line}), nil
			}
		}
		return nil, errJSON
	}
}

// object reads a mapping from its '{'; its children go on the stack above
// mark.
func (s *jsonScanner) object(line, mark int) (*node, error) {
	s.pos++
	n := s.node(node{Kind: yaml.MappingNode, Tag: "!!map", Line: line})
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return n, nil
	}
	for {
		s.space()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return nil, errJSON
		}
		k, err := s.value()
		if err != nil {
			return nil, err
		}
		if s.space(); s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return nil, errJSON
		}
		s.pos++
		v, err := s.value()
		if err != nil {
			return nil, err
		}
		if !s.check {
			s.stack = append(s.stack, k, v)
		}
		if done, err := s.next('}'); err != nil || done {
			if err == nil && !s.check {
				n.Content = s.alloc.list(s.stack[mark:])
			}
			return n, err
		}
	}
}

// array reads a sequence from its '['. A section's list (document,
// section, list: depth 2 once inside it) is lazy: its items are checked and
// counted, and only where it starts is kept.
func (s *jsonScanner) array(line, mark int) (*node, error) {
	n := s.node(node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: line})
	start, lazy := s.pos, s.depth == 3 && !s.check
	s.check = s.check || lazy
	count, err := s.items(mark)
	switch {
	case lazy:
		s.check = false
		if err == nil {
			n.lazy = &lazyList{count: count, walk: walkJSON(s.data, start, line, count)}
		}
	case err == nil && !s.check:
		n.Content = s.alloc.list(s.stack[mark:])
	}
	return n, err
}

// items reads a sequence's items, '[' to ']', onto the stack (unless
// checking), and counts them.
func (s *jsonScanner) items(mark int) (int, error) {
	s.pos++
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return 0, nil
	}
	for count := 1; ; count++ {
		v, err := s.value()
		if err != nil {
			return 0, err
		}
		if !s.check {
			s.stack = append(s.stack, v)
		}
		if done, err := s.next(']'); err != nil || done {
			return count, err
		}
	}
}

// next reads the ',' between items or the closing byte; done when closed.
func (s *jsonScanner) next(closing byte) (done bool, err error) {
	s.space()
	if s.pos >= len(s.data) {
		return false, errJSON
	}
	switch s.data[s.pos] {
	case ',':
		s.pos++
		return false, nil
	case closing:
		s.pos++
		return true, nil
	}
	return false, errJSON
}

// str reads a string; one without escapes is a copy of its bytes.
func (s *jsonScanner) str() (string, error) {
	start := s.pos
	s.pos++
	escaped := false
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; {
		case c == '"':
			s.pos++
			raw := s.data[start:s.pos]
			if !escaped {
				if !utf8.Valid(raw) {
					return "", errJSON
				}
				if len(raw) == 2 {
					return "", nil
				}
				return unsafe.String(&raw[1], len(raw)-2), nil
			}
			var out string
			if err := json.Unmarshal(raw, &out); err != nil {
				return "", errJSON
			}
			return out, nil
		case c == '\\':
			escaped = true
			s.pos += 2
		case c < 0x20:
			return "", errJSON
		default:
			s.pos++
		}
	}
	return "", errJSON
}
