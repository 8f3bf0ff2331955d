package main

import (
	"encoding/json"
	"io"

	"github.com/moat-dev/moat/internal/client"
	"github.com/moat-dev/moat/internal/events"
)

type eventT = events.Event

func writeJSONLine(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

func isNotFound(err error) bool { return client.NotFound(err) }
