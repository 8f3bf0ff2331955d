//go:build linux && !portable

package main

import (
	"errors"
	"testing"
)

func TestBrowserOpener(t *testing.T) {
	found := func(string) (string, error) { return "/usr/bin/xdg-open", nil }
	missing := func(string) (string, error) { return "", errors.New("not found") }
	for _, c := range []struct {
		name   string
		noOpen bool
		env    map[string]string
		look   func(string) (string, error)
		want   bool
	}{
		{"X display and xdg-open", false, map[string]string{"DISPLAY": ":0"}, found, true},
		{"Wayland and xdg-open", false, map[string]string{"WAYLAND_DISPLAY": "wayland-0"}, found, true},
		{"no display (ssh, CI, tests)", false, nil, found, false},
		{"no xdg-open", false, map[string]string{"DISPLAY": ":0"}, missing, false},
		{"--no-open", true, map[string]string{"DISPLAY": ":0"}, found, false},
	} {
		_, ok := browserOpener(c.noOpen, func(k string) string { return c.env[k] }, c.look)
		if ok != c.want {
			t.Errorf("%s: opens = %v, want %v", c.name, ok, c.want)
		}
	}
}
