package metrics

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Label values with quotes, backslashes and newlines (an interface or
// netns name can hold any of them but the last), repeated series, and
// families without samples: Prometheus's parser reads what is written.
func TestTextFormatEscapesAndDeduplicates(t *testing.T) {
	s := newSet()
	s.uint("program_packets_total", 7, "encap", `we"ird\name`, "a\nb")
	s.bool("doctor_check_ok", true, "mtu", "tunnel 10.0.0.1->10.0.0.2")
	s.bool("doctor_check_ok", false, "mtu", "tunnel 10.0.0.1->10.0.0.2")
	s.bool("doctor_check_ok", true, "mtu", "tunnel 10.0.0.1->10.0.0.2")
	s.uint("scrape_errors", 0)
	var b bytes.Buffer
	if err := s.write(&b); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if len(mfs) != 3 {
		t.Errorf("%d families, want 3 (empty ones left out):\n%s", len(mfs), b.String())
	}
	m := mfs["tunmux_program_packets_total"].Metric[0]
	if m.Label[1].GetValue() != `we"ird\name` || m.Label[2].GetValue() != "a\nb" || m.Counter.GetValue() != 7 {
		t.Errorf("labels came back as %v", m.Label)
	}
	if d := mfs["tunmux_doctor_check_ok"].Metric; len(d) != 1 || d[0].Gauge.GetValue() != 0 {
		t.Errorf("a check of one subject that failed once must be one failing series: %v", d)
	}
	if len(Names()) != len(families) || Names()[0] != "tunmux_dataplane_loaded" {
		t.Errorf("Names: %v", Names())
	}
}
