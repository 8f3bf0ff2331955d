package events

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func seqs(evs []Event) []uint64 {
	out := []uint64{}
	for _, e := range evs {
		out = append(out, e.Seq)
	}
	return out
}

// TestSeqGoesOnAcrossOpens: events are numbered 1, 2, 3 ... in the file,
// lines from before Seq existed by their place, and a log opened again
// numbers on from the file's last event, so a reader resuming after a
// Seq neither repeats nor skips one.
func TestSeqGoesOnAcrossOpens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	legacy := `{"time":"2026-12-01T10:00:00Z","component":"daemon","type":"stack.starting","message":"old"}
{"time":"2026-12-01T10:00:01Z","component":"daemon","type":"stack.running","message":"old"}
not json
`
	if err := os.WriteFile(path, []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ch, stop := l.Subscribe()
	l.Addf("daemon", "a", nil, "first")
	l.Addf("daemon", "b", nil, "second")
	if e := <-ch; e.Seq != 3 || e.Type != "a" {
		t.Fatalf("live event %+v, want seq 3", e)
	}
	stop()
	l.Close()
	l, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l.Addf("daemon", "c", nil, "after a restart")
	l.Close()
	evs, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := seqs(evs), []uint64{1, 2, 3, 4, 5}; !slices.Equal(got, want) {
		t.Fatalf("seqs %v, want %v", got, want)
	}
	if evs[4].Type != "c" {
		t.Fatalf("last event %+v", evs[4])
	}
	for _, tc := range []struct {
		after uint64
		want  []uint64
	}{{0, []uint64{1, 2, 3, 4, 5}}, {2, []uint64{3, 4, 5}}, {5, []uint64{}}, {9, []uint64{}}} {
		got, err := ReadFileAfter(path, tc.after)
		if err != nil || !slices.Equal(seqs(got), tc.want) {
			t.Errorf("ReadFileAfter(%d) = %v (%v), want %v", tc.after, seqs(got), err, tc.want)
		}
	}
}

func TestOpenNewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Addf("daemon", "a", nil, "x")
	evs, err := ReadFile(path)
	if err != nil || len(evs) != 1 || evs[0].Seq != 1 {
		t.Fatalf("events %+v (%v), want one with seq 1", evs, err)
	}
}
