package apply

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"gopkg.in/yaml.v3"
)

// The YAML fast path: the block style tunmux export writes, and one-line
// flow mappings (`- {inner-src: 10.0.0.1, vni: 5}`), read line by line into
// the tree yaml.v3 makes of them (kinds, values, lines; of the tags, Parse
// reads only whether a value is null). Anything outside that subset makes
// it give up, and the file goes to yaml.v3, which reads all of YAML and
// reports errors: anchors and aliases, tags, block scalars (| and >),
// scalars over several lines, escapes in double quotes, flow collections
// over several lines or nested in flow mappings, documents markers,
// directives and tabs in indentation.

// errNotSimple is the fast path giving up.
var errNotSimple = errors.New("not in the YAML subset the fast path reads")

// yamlLine is a line with content: its indentation, its text with the
// indentation and any comment taken off, and its number.
type yamlLine struct {
	indent int
	text   string
	num    int
}

// yamlFast reads data with the fast path, or returns errNotSimple.
func yamlFast(data []byte, a *nodes) (*node, error) {
	// The tree's strings share data's bytes (see Parse), as the JSON
	// scanner's do: no copy of a 25 MB file.
	lines, err := yamlLines(unsafe.String(unsafe.SliceData(data), len(data)))
	if err != nil || len(lines) == 0 {
		return nil, errNotSimple
	}
	p := &yamlParser{lines: lines, alloc: a}
	top, err := p.block(lines[0].indent, 0)
	if err != nil || p.i != len(lines) || top.Kind != yaml.MappingNode {
		return nil, errNotSimple
	}
	return top, nil
}

// yamlLines splits text into lines with content.
func yamlLines(text string) ([]yamlLine, error) {
	// One line each at most: sized once (counting is a fast scan), not
	// grown a doubling at a time.
	out := make([]yamlLine, 0, strings.Count(text, "\n")+1)
	num := 0
	for len(text) > 0 {
		num++
		line, rest, _ := strings.Cut(text, "\n")
		text = rest
		line = strings.TrimSuffix(line, "\r")
		indent := 0
		for indent < len(line) && line[indent] == ' ' {
			indent++
		}
		body := line[indent:]
		if body == "" {
			continue
		}
		if body[0] == '\t' || strings.HasPrefix(body, "---") || strings.HasPrefix(body, "...") || body[0] == '%' {
			return nil, errNotSimple
		}
		body, err := stripComment(body)
		if err != nil {
			return nil, err
		}
		if body == "" {
			continue
		}
		out = append(out, yamlLine{indent: indent, text: body, num: num})
	}
	return out, nil
}

// stripComment takes off a comment (# at the start or after a space,
// outside quotes) and trailing spaces.
func stripComment(s string) (string, error) {
	if strings.IndexAny(s, "#'\"\t") < 0 {
		return strings.TrimRight(s, " "), nil // most lines: nothing to look at
	}
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			// A quote opens a quoted scalar only where one can start.
			if i == 0 || strings.IndexByte(" [{,:", s[i-1]) >= 0 {
				quote = c
			}
		case c == '#' && (i == 0 || s[i-1] == ' '):
			return strings.TrimRight(s[:i], " "), nil
		case c == '\t':
			return "", errNotSimple
		}
	}
	if quote != 0 {
		return "", errNotSimple // a quoted scalar over several lines
	}
	return strings.TrimRight(s, " "), nil
}

type yamlParser struct {
	lines []yamlLine
	i     int
	alloc *nodes
	// children of the collections being read, innermost last (each gets a
	// list of its own size from the arena when it is done)
	stack []*node
}

// done gives n the children pushed since mark.
func (p *yamlParser) done(n *node, mark int) {
	n.Content = p.alloc.list(p.stack[mark:])
	p.stack = p.stack[:mark]
}

// The depth of a section's lists (document, section, list): they are read
// lazily, as in JSON.
const lazyDepth = 2

// block reads the mapping or sequence whose lines start at indent, depth
// levels under the document.
func (p *yamlParser) block(indent, depth int) (*node, error) {
	if isItem(p.lines[p.i].text) {
		return p.sequence(indent, depth)
	}
	return p.mapping(p.lines[p.i], indent, depth)
}

func isItem(text string) bool { return text == "-" || strings.HasPrefix(text, "- ") }

// sequence reads the items at indent. At lazyDepth it checks them, an
// arena's worth at a time, and keeps only where they start.
func (p *yamlParser) sequence(indent, depth int) (*node, error) {
	n := p.alloc.new(node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: p.lines[p.i].num})
	lazy := depth == lazyDepth
	start, keep := p.i, p.alloc
	if lazy {
		p.alloc = &nodes{}
		defer func() { p.alloc = keep }()
	}
	count, mark := 0, len(p.stack)
	for p.i < len(p.lines) && p.lines[p.i].indent == indent && isItem(p.lines[p.i].text) {
		if lazy {
			p.alloc.reset()
		}
		item, err := p.item(indent, depth)
		if err != nil {
			return nil, err
		}
		count++
		if !lazy {
			p.stack = append(p.stack, item)
		}
	}
	p.done(n, mark)
	if p.i < len(p.lines) && p.lines[p.i].indent > indent {
		return nil, errNotSimple
	}
	if lazy {
		n.lazy = &lazyList{count: count, walk: p.walkItems(start, indent, depth, count)}
	}
	return n, nil
}

// walkItems walks the count items of the sequence whose first line is
// lines[start], made anew in an arena reused for each.
func (p *yamlParser) walkItems(start, indent, depth, count int) func(fn func(i int, item *node)) {
	lines := p.lines
	return func(fn func(i int, item *node)) {
		q := &yamlParser{lines: lines, i: start, alloc: &nodes{}}
		for i := 0; i < count; i++ {
			q.alloc.reset()
			item, err := q.item(indent, depth)
			if err != nil {
				// The lines were checked when the list was first read.
				panic(fmt.Sprintf("apply: a YAML list checked once fails again: %v", err))
			}
			fn(i, item)
		}
	}
}

// item reads the sequence item at p.i.
func (p *yamlParser) item(indent, depth int) (*node, error) {
	l := p.lines[p.i]
	rest := strings.TrimLeft(strings.TrimPrefix(l.text, "-"), " ")
	switch {
	case rest == "":
		p.i++
		return p.nested(indent, l.num, false, depth+1)
	case isItem(rest):
		return nil, errNotSimple // "- - x"
	case isKey(rest):
		// A mapping that starts on the item's line, at the column of its
		// first key.
		col := indent + len(l.text) - len(rest)
		return p.mapping(yamlLine{indent: col, text: rest, num: l.num}, col, depth+1)
	default:
		p.i++
		return p.value(rest, l.num)
	}
}

// mapping reads the entries at indent, the first from first (the line at
// p.i, or the rest of an item's line).
func (p *yamlParser) mapping(first yamlLine, indent, depth int) (*node, error) {
	n := p.alloc.new(node{Kind: yaml.MappingNode, Tag: "!!map", Line: first.num})
	l, mark := first, len(p.stack)
	defer p.done(n, mark)
	for {
		key, rest, ok := splitKey(l.text)
		if !ok {
			return nil, errNotSimple
		}
		k := p.alloc.new(node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, Line: l.num})
		p.i++
		var v *node
		var err error
		if rest == "" {
			v, err = p.nested(indent, l.num, true, depth+1)
		} else {
			v, err = p.value(rest, l.num)
		}
		if err != nil {
			return nil, err
		}
		p.stack = append(p.stack, k, v)
		if p.i >= len(p.lines) || p.lines[p.i].indent != indent || isItem(p.lines[p.i].text) {
			break
		}
		l = p.lines[p.i]
	}
	if p.i < len(p.lines) && p.lines[p.i].indent > indent {
		return nil, errNotSimple // a scalar continued on the next line
	}
	return n, nil
}

// nested reads the block under a key or an item that has nothing after it
// on its line: more indented lines, or (under a key) a sequence at the
// key's own indentation; with neither, the value is null.
func (p *yamlParser) nested(indent, line int, underKey bool, depth int) (*node, error) {
	if p.i < len(p.lines) {
		next := p.lines[p.i]
		if next.indent > indent || underKey && next.indent == indent && isItem(next.text) {
			return p.block(next.indent, depth)
		}
	}
	return p.alloc.new(node{Kind: yaml.ScalarNode, Tag: "!!null", Line: line}), nil
}

// isKey reports whether text starts a "key: value" or "key:" entry.
func isKey(text string) bool {
	_, _, ok := splitKey(text)
	return ok
}

// splitKey splits "key: value" and "key:" (a plain key of safe bytes).
func splitKey(text string) (key, rest string, ok bool) {
	i := strings.Index(text, ":")
	if i <= 0 || (i+1 < len(text) && text[i+1] != ' ') {
		return "", "", false
	}
	key = text[:i]
	if !plainKey(key) {
		return "", "", false
	}
	return key, strings.TrimLeft(text[i+1:], " "), true
}

// plainKey reports whether key is made of letters, digits, - and _ (every
// key tunmux's files have), starting with a letter.
func plainKey(key string) bool {
	if key == "" || !(key[0] >= 'a' && key[0] <= 'z' || key[0] >= 'A' && key[0] <= 'Z') {
		return false
	}
	for j := 0; j < len(key); j++ {
		if c := key[j]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// value reads what follows a key or an item on its line: a scalar, or a
// flow mapping or sequence of scalars.
func (p *yamlParser) value(text string, line int) (*node, error) {
	switch text[0] {
	case '{':
		return p.flowMapping(text, line)
	case '[':
		n, rest, err := p.flowSequence(text, line)
		if err != nil || strings.TrimLeft(rest, " ") != "" {
			return nil, errNotSimple
		}
		return n, nil
	}
	v, rest, err := p.scalar(text, line, false)
	if err != nil || rest != "" {
		return nil, errNotSimple
	}
	return v, nil
}

// flowMapping reads {k: v, ...} (values scalars or flow sequences of
// scalars), the whole of text.
func (p *yamlParser) flowMapping(text string, line int) (*node, error) {
	n := p.alloc.new(node{Kind: yaml.MappingNode, Tag: "!!map", Line: line})
	mark := len(p.stack)
	defer p.done(n, mark)
	rest := strings.TrimLeft(text[1:], " ")
	if strings.HasPrefix(rest, "}") {
		if strings.TrimLeft(rest[1:], " ") != "" {
			return nil, errNotSimple
		}
		return n, nil
	}
	for {
		i := strings.Index(rest, ":")
		if i <= 0 || i+1 >= len(rest) || rest[i+1] != ' ' {
			return nil, errNotSimple
		}
		key := rest[:i]
		if !plainKey(key) {
			return nil, errNotSimple
		}
		k := p.alloc.new(node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, Line: line})
		rest = strings.TrimLeft(rest[i+1:], " ")
		var v *node
		var err error
		if strings.HasPrefix(rest, "[") {
			v, rest, err = p.flowSequence(rest, line)
		} else {
			v, rest, err = p.scalar(rest, line, true)
		}
		if err != nil {
			return nil, err
		}
		p.stack = append(p.stack, k, v)
		rest = strings.TrimLeft(rest, " ")
		switch {
		case strings.HasPrefix(rest, ","):
			rest = strings.TrimLeft(rest[1:], " ")
		case strings.HasPrefix(rest, "}"):
			if strings.TrimLeft(rest[1:], " ") != "" {
				return nil, errNotSimple
			}
			return n, nil
		default:
			return nil, errNotSimple
		}
	}
}

// flowSequence reads [a, b, ...] of scalars at the start of text and
// returns what follows it.
func (p *yamlParser) flowSequence(text string, line int) (*node, string, error) {
	n := p.alloc.new(node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: line})
	mark := len(p.stack)
	defer p.done(n, mark)
	rest := strings.TrimLeft(text[1:], " ")
	if strings.HasPrefix(rest, "]") {
		return n, rest[1:], nil
	}
	for {
		v, after, err := p.scalar(rest, line, true)
		if err != nil {
			return nil, "", err
		}
		p.stack = append(p.stack, v)
		rest = strings.TrimLeft(after, " ")
		switch {
		case strings.HasPrefix(rest, ","):
			rest = strings.TrimLeft(rest[1:], " ")
		case strings.HasPrefix(rest, "]"):
			return n, rest[1:], nil
		default:
			return nil, "", errNotSimple
		}
	}
}

// scalar reads a plain or quoted scalar at the start of text; in flow
// context a plain one ends at , ] or }. It returns what follows it.
func (p *yamlParser) scalar(text string, line int, flow bool) (*node, string, error) {
	if text == "" {
		return nil, "", errNotSimple
	}
	switch c := text[0]; {
	case c == '"':
		end := strings.IndexByte(text[1:], '"')
		if end < 0 || strings.IndexByte(text[1:1+end], '\\') >= 0 {
			return nil, "", errNotSimple // escapes: yaml.v3 reads them
		}
		return p.alloc.new(node{Kind: yaml.ScalarNode, Tag: "!!str", Value: text[1 : 1+end], Line: line}), text[2+end:], nil
	case c == '\'':
		end := strings.IndexByte(text[1:], '\'')
		if end < 0 || strings.HasPrefix(text[2+end:], "'") {
			return nil, "", errNotSimple // '' inside: yaml.v3 reads it
		}
		return p.alloc.new(node{Kind: yaml.ScalarNode, Tag: "!!str", Value: text[1 : 1+end], Line: line}), text[2+end:], nil
	case strings.IndexByte("?:,[]{}#&*!|>%@`", c) >= 0, c == '-' && (len(text) == 1 || text[1] == ' '):
		return nil, "", errNotSimple
	}
	end := len(text)
	if flow {
		if i := strings.IndexAny(text, ",]}"); i >= 0 {
			end = i
		}
	}
	value := strings.TrimRight(text[:end], " ")
	if strings.Contains(value, ": ") || strings.HasSuffix(value, ":") || strings.Contains(value, " #") {
		return nil, "", errNotSimple
	}
	tag := "!!str"
	switch value {
	case "~", "null", "Null", "NULL":
		tag = "!!null"
	}
	return p.alloc.new(node{Kind: yaml.ScalarNode, Tag: tag, Value: value, Line: line}), text[end:], nil
}
