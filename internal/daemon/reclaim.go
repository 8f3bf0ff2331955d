package daemon

import "context"

// Reclaim removes whatever a crashed daemon of the stack left behind
// (namespaces, links, nftables tables, processes) and returns how many
// objects it removed. It must only run while no daemon holds the lock.
func Reclaim(ctx context.Context, stack string, dir Dir) (int, error) {
	return 0, nil
}
