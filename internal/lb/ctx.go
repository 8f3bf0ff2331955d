package lb

import (
	"context"

	"github.com/moat-dev/moat/internal/targetgroup"
)

type targetKey struct{}

func contextWithTarget(ctx context.Context, t *targetgroup.Target) context.Context {
	return context.WithValue(ctx, targetKey{}, t)
}
