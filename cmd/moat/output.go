package main

import (
	"encoding/json"
	"errors"
	"io"

	"github.com/spf13/cobra"

	"github.com/moat-dev/moat/internal/client"
	"github.com/moat-dev/moat/internal/events"
)

type eventT = events.Event

func writeJSONLine(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

func isNotFound(err error) bool { return client.NotFound(err) }

// textOrJSON is the value of a listing's -o flag. It is checked when the
// flag is parsed, so "-o yaml" is a usage error (exit 2) on every listing
// rather than a silent table.
type textOrJSON string

func (o *textOrJSON) String() string { return string(*o) }
func (o *textOrJSON) Type() string   { return "string" }
func (o *textOrJSON) Set(s string) error {
	if s != "text" && s != "json" {
		return errors.New("use text or json")
	}
	*o = textOrJSON(s)
	return nil
}

// outputFlag registers -o/--output (text or json, default text) into p.
func outputFlag(c *cobra.Command, p *string) {
	*p = "text"
	c.Flags().VarP((*textOrJSON)(p), "output", "o", "output format: text or json")
}
