// Package events is the control plane's event log: everything the daemon
// did, as JSON lines on disk and as a live feed for `moat events -f`.
package events

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Event is one thing the control plane did or saw.
type Event struct {
	// Seq numbers the stack's events 1, 2, 3, ... in the order they were
	// logged, across runs of the daemon (the count goes on from the
	// file), so a reader can resume after the last one it saw. Lines
	// written before Seq existed are numbered by their place in the file.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Component that acted: vpc, autoscale, lb, bastion, daemon, ...
	Component string `json:"component"`
	// Type is a short machine-readable kind, e.g. instance.launch.
	Type string `json:"type"`
	// Message is for humans, in AWS's activity wording where there is one.
	Message string `json:"message"`
	// Fields carry details (instance id, group, cause).
	Fields map[string]string `json:"fields,omitempty"`
}

func (e Event) String() string {
	return fmt.Sprintf("%s  %-9s %s", e.Time.Format(time.RFC3339), e.Component, e.Message)
}

// Log appends events to a JSON-lines file and fans them out to subscribers.
// It is safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	w    io.WriteCloser
	subs map[chan Event]struct{}
	now  func() time.Time
	seq  uint64 // the last event's
}

// Open opens (appending) the log file at path; its events are numbered
// on from the file's last.
func Open(path string) (*Log, error) {
	past, err := ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open event log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open event log: %w", err)
	}
	l := New(f)
	if n := len(past); n > 0 {
		l.seq = past[n-1].Seq
	}
	return l, nil
}

// New returns a log writing to w.
func New(w io.WriteCloser) *Log {
	return &Log{w: w, subs: map[chan Event]struct{}{}, now: time.Now}
}

// Add records an event; a zero Time is set to now.
func (l *Log) Add(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	l.seq++
	e.Seq = l.seq
	if l.w != nil {
		b, _ := json.Marshal(e)
		_, _ = l.w.Write(append(b, '\n'))
	}
	for ch := range l.subs {
		select {
		case ch <- e:
		default: // a slow subscriber misses events rather than blocking the control plane
		}
	}
}

// Addf records an event with a formatted message.
func (l *Log) Addf(component, typ string, fields map[string]string, format string, args ...any) {
	l.Add(Event{Component: component, Type: typ, Fields: fields, Message: fmt.Sprintf(format, args...)})
}

// Subscribe returns a channel of new events and a function to stop.
func (l *Log) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, 256)
	l.mu.Lock()
	l.subs[ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		if _, ok := l.subs[ch]; ok {
			delete(l.subs, ch)
			close(ch)
		}
		l.mu.Unlock()
	}
}

// Close closes the file and ends every subscription.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ch := range l.subs {
		delete(l.subs, ch)
		close(ch)
	}
	if l.w == nil {
		return nil
	}
	err := l.w.Close()
	l.w = nil
	return err
}

// ReadFile reads every event in a log file. An event without a Seq (a
// line written before Seq existed) gets the one after the previous
// event's, as Open counts on.
func ReadFile(path string) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		var e Event
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			if n := len(out); e.Seq == 0 && n > 0 {
				e.Seq = out[n-1].Seq + 1
			} else if e.Seq == 0 {
				e.Seq = 1
			}
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

// ReadFileAfter reads the events of a log file whose Seq is after seq.
func ReadFileAfter(path string, seq uint64) ([]Event, error) {
	evs, err := ReadFile(path)
	i := 0
	for i < len(evs) && evs[i].Seq <= seq {
		i++
	}
	return evs[i:], err
}
