package dataplane

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/tunmux/tunmux/netdev"
)

// DeviceConfig is what a device tunmux creates carries beyond the device
// itself: addresses, and kernel routes through it. Both go with the device
// when tunmux deletes it (unload --all), so a restore must give them back.
type DeviceConfig struct {
	Addresses []netip.Prefix
	Routes    []netdev.KernelRoute
}

// Empty reports whether there is nothing to configure.
func (c DeviceConfig) Empty() bool { return len(c.Addresses) == 0 && len(c.Routes) == 0 }

// String names the config's parts for a change's detail.
func (c DeviceConfig) String() string {
	var parts []string
	for _, a := range c.Addresses {
		parts = append(parts, "address "+a.String())
	}
	for _, r := range c.Routes {
		parts = append(parts, "route "+r.String())
	}
	return strings.Join(parts, ", ")
}

// ReadDeviceConfig returns the addresses and kernel routes the interface
// called name has (as netdev.Addresses and netdev.RoutesVia see them).
func ReadDeviceConfig(name string) (DeviceConfig, error) {
	var c DeviceConfig
	var err error
	if c.Addresses, err = netdev.Addresses(name); err != nil {
		return c, err
	}
	c.Routes, err = netdev.RoutesVia(name)
	return c, err
}

// missing returns the part of c that the interface called name lacks (all
// of it when the interface is not there).
func (c DeviceConfig) missing(name string) DeviceConfig {
	have, err := ReadDeviceConfig(name)
	if err != nil {
		return c
	}
	var out DeviceConfig
	for _, a := range c.Addresses {
		if !slices.Contains(have.Addresses, a) {
			out.Addresses = append(out.Addresses, a)
		}
	}
	for _, r := range c.Routes {
		if !slices.Contains(have.Routes, r) {
			out.Routes = append(out.Routes, r)
		}
	}
	return out
}

// configureAll gives each named interface its addresses, then each its
// routes (a route's source address may be another device's).
func configureAll(cfg map[string]DeviceConfig) error {
	names := make([]string, 0, len(cfg))
	for n := range cfg {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		for _, a := range cfg[n].Addresses {
			if err := netdev.AddAddress(n, a); err != nil {
				return err
			}
		}
	}
	for _, n := range names {
		for _, r := range cfg[n].Routes {
			if err := netdev.AddRoute(n, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// configured is what an entry that creates a device gives planConfig: its
// name, its config and its line.
type configured interface {
	configName() string
	config() DeviceConfig
	line() int
}

func (d DesiredMember) configName() string   { return d.Name }
func (d DesiredMember) config() DeviceConfig { return d.Config }
func (d DesiredMember) line() int            { return d.Line }
func (d DesiredDevice) configName() string   { return d.Name }
func (d DesiredDevice) config() DeviceConfig { return d.Config }
func (d DesiredDevice) line() int            { return d.Line }

// planConfig adds to configure what the desired devices lack of their
// addresses and routes (those being written already aside), and returns a
// change for each.
func planConfig[E configured](kind string, desired []E, configure map[string]DeviceConfig) []Change {
	var out []Change
	for _, d := range desired {
		if _, writing := configure[d.configName()]; writing {
			continue
		}
		if miss := d.config().missing(d.configName()); !miss.Empty() {
			configure[d.configName()] = miss
			out = append(out, Change{Action: "change", Kind: kind, Key: d.configName(), Detail: "configure " + miss.String(), Line: d.line()})
		}
	}
	return out
}
