// Package realtime embeds the bundled example stack (moat.yaml and the
// app) so that `moat init` can write it anywhere.
package realtime

import "embed"

// Files holds moat.yaml and app/.
//
//go:embed moat.yaml app
var Files embed.FS
