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
