package main

import (
	"errors"
	"testing"

	"github.com/tunmux/tunmux/maps"
)

// --metrics-addr takes HOST:PORT, :PORT, and an IPv6 host without brackets
// (what Kubernetes makes of $(NODE_IP):9478 on an IPv6 node).
func TestMetricsAddr(t *testing.T) {
	for in, want := range map[string]string{
		":9478":              ":9478",
		"127.0.0.1:0":        "127.0.0.1:0",
		"192.168.61.11:9478": "192.168.61.11:9478",
		"[fd00::1]:9478":     "[fd00::1]:9478",
		"fd00::1:9478":       "[fd00::1]:9478",
		"fe80::1%eth0:9478":  "[fe80::1%eth0]:9478",
	} {
		if got, err := metricsAddr(in); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "9478", "fd00::1", "192.168.61.11:x", "$(NODE_IP):9478:1"} {
		if got, err := metricsAddr(bad); !errors.Is(err, maps.ErrInvalid) {
			t.Errorf("%q taken as %q", bad, got)
		}
	}
}
