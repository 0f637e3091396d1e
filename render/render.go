// Package render prints command results, the same way for every command: a
// table (or a few lines of text) for people, the default, or JSON for
// scripts (-o json). A result is any value that encodes to JSON and
// implements Tabular or Texter.
package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/olekukonko/tablewriter"

	"github.com/tunmux/tunmux/maps"
)

// Format is an output format.
type Format string

// Output formats.
const (
	Table Format = "table"
	Wide  Format = "wide" // a table with every column
	JSON  Format = "json"
)

// ParseFormat validates -o.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case Table, Wide, JSON:
		return Format(s), nil
	}
	return "", maps.Invalid("-o", s, "unknown output format", "table|wide|json")
}

// WideTabular is a table whose default form fits 80 columns and whose
// every column shows with -o wide.
type WideTabular interface {
	Tabular
	WideHeader() []string
	WideRows() [][]string
}

// Tabular is a result that can print itself as a table.
type Tabular interface {
	Header() []string
	Rows() [][]string
}

// Texter is a result that prints itself as lines of text for people
// (used in table mode in preference to Tabular).
type Texter interface {
	Text() string
}

// Printer writes results in one format.
type Printer struct {
	W      io.Writer
	Format Format
}

// Print writes v: as indented JSON, or for people as its Text or its table.
func (p Printer) Print(v any) error {
	if p.Format == JSON {
		enc := json.NewEncoder(p.W)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false) // "10.0.0.1->10.0.0.2", not "-\u003e"
		return enc.Encode(v)
	}
	if w, ok := v.(WideTabular); ok && p.Format == Wide {
		return WriteTable(p.W, w.WideHeader(), w.WideRows())
	}
	if t, ok := v.(Texter); ok {
		_, err := io.WriteString(p.W, strings.TrimRight(t.Text(), "\n")+"\n")
		return err
	}
	t, ok := v.(Tabular)
	if !ok {
		return fmt.Errorf("render: %T has no table form", v)
	}
	return WriteTable(p.W, t.Header(), t.Rows())
}

// Note writes a line for people; in JSON mode it writes nothing, so that
// standard output stays one JSON document.
func (p Printer) Note(format string, args ...any) {
	if p.Format == JSON {
		return
	}
	fmt.Fprintf(p.W, format+"\n", args...)
}

// WriteTable writes a borderless, left-aligned table with an upper-case
// header, columns two spaces apart (kubectl's layout).
func WriteTable(w io.Writer, header []string, rows [][]string) error {
	var buf bytes.Buffer
	t := tablewriter.NewWriter(&buf)
	t.SetAutoWrapText(false)
	t.SetAutoFormatHeaders(false)
	t.SetHeaderAlignment(tablewriter.ALIGN_LEFT)
	t.SetAlignment(tablewriter.ALIGN_LEFT)
	t.SetBorder(false)
	t.SetHeaderLine(false)
	t.SetCenterSeparator("")
	t.SetColumnSeparator("")
	t.SetRowSeparator("")
	t.SetTablePadding("  ")
	t.SetNoWhiteSpace(true)
	hdr := make([]string, len(header))
	for i, h := range header {
		hdr[i] = strings.ToUpper(h)
	}
	t.SetHeader(hdr)
	t.AppendBulk(rows)
	t.Render()
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if line == "" {
			continue
		}
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}
