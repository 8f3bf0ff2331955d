package instance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// UIDRangeDir holds one file per allocated uid range, named by its slot
// and holding "OWNER INSTANCE-ID": the allocation outlives a crash of
// moat, so the next moat up or moat down of the owner (the stack) gives
// its ranges back (ReleaseUIDRanges), and no two instances of any stacks
// on this machine ever share one. It is on tmpfs: a reboot ends every
// instance and frees every range.
var UIDRangeDir = "/run/moat/uid-ranges"

// uidRange is one instance's allocated range.
type uidRange struct {
	slot int
	base uint32
}

// allocateUIDRange takes the lowest free slot for owner's instance id:
// the slot's file is created exclusively, so concurrent allocations (two
// stacks' daemons) never get the same one.
func allocateUIDRange(owner, id string) (uidRange, error) {
	if err := os.MkdirAll(UIDRangeDir, 0o700); err != nil {
		return uidRange{}, fmt.Errorf("allocate a uid range: %w", err)
	}
	for range 8 { // lost races retry with a fresh listing
		used, err := usedSlots()
		if err != nil {
			return uidRange{}, err
		}
		for {
			slot, ok := freeSlot(used)
			if !ok {
				return uidRange{}, fmt.Errorf("allocate a uid range: all %d ranges are taken", UIDRangeSlots)
			}
			f, err := os.OpenFile(slotPath(slot), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, os.ErrExist) {
				used[slot] = true
				continue
			}
			if err != nil {
				return uidRange{}, fmt.Errorf("allocate a uid range: %w", err)
			}
			_, werr := fmt.Fprintf(f, "%s %s\n", owner, id)
			if err := errors.Join(werr, f.Close()); err != nil {
				_ = os.Remove(slotPath(slot))
				return uidRange{}, fmt.Errorf("allocate a uid range: %w", err)
			}
			return uidRange{slot: slot, base: slotBase(slot)}, nil
		}
	}
	return uidRange{}, errors.New("allocate a uid range: too many concurrent allocations")
}

func slotPath(slot int) string { return filepath.Join(UIDRangeDir, strconv.Itoa(slot)) }

func usedSlots() (map[int]bool, error) {
	names, err := slotNames()
	if err != nil {
		return nil, err
	}
	used := map[int]bool{}
	for s := range names {
		used[s] = true
	}
	return used, nil
}

// slotNames maps every allocated slot to its file's content.
func slotNames() (map[int]string, error) {
	ents, err := os.ReadDir(UIDRangeDir)
	if errors.Is(err, os.ErrNotExist) {
		return map[int]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read uid ranges: %w", err)
	}
	out := map[int]string{}
	for _, e := range ents {
		slot, err := strconv.Atoi(e.Name())
		if err != nil || slot < 0 {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(UIDRangeDir, e.Name()))
		out[slot] = strings.TrimSpace(string(b))
	}
	return out, nil
}

// release gives the range back.
func (r uidRange) release() error {
	if err := os.Remove(slotPath(r.slot)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("release uid range %d: %w", r.slot, err)
	}
	return nil
}

// ReleaseUIDRanges gives back every range owner allocated, after a crash:
// call it once none of owner's instances runs any more. It returns how
// many it released.
func ReleaseUIDRanges(owner string) (int, error) {
	names, err := slotNames()
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for slot, content := range names {
		if o, _, _ := strings.Cut(content, " "); o != owner {
			continue
		}
		if err := (uidRange{slot: slot}).release(); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
