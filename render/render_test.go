package render

import (
	"bytes"
	"strings"
	"testing"
)

type rows []string

func (r rows) Header() []string { return []string{"name", "value"} }
func (r rows) Rows() [][]string {
	var out [][]string
	for _, x := range r {
		out = append(out, []string{x, strings.ToUpper(x)})
	}
	return out
}

func TestTableAndJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := (Printer{W: &buf, Format: Table}).Print(rows{"a", "bb"}); err != nil {
		t.Fatal(err)
	}
	want := "NAME  VALUE\na     A\nbb    BB\n"
	if buf.String() != want {
		t.Errorf("table:\n%q\nwant\n%q", buf.String(), want)
	}
	buf.Reset()
	if err := (Printer{W: &buf, Format: JSON}).Print(rows{"a"}); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(buf.String()) != "[\n  \"a\"\n]" {
		t.Errorf("json: %q", buf.String())
	}
	if _, err := ParseFormat("yaml"); err == nil || !strings.Contains(err.Error(), "table|wide|json") {
		t.Errorf("ParseFormat(yaml): %v", err)
	}
}
