//go:build tools

// Package tools pins Grafana's dashboard linter for scripts/install-deps.sh,
// which builds it into .cache/bin with `go build` from this module. The
// module proxy here serves only this exact version, and `go install ...@latest`
// fails (the proxy refuses the version list), so the pin lives in go.mod and
// its hashes in go.sum.
package tools

import _ "github.com/grafana/dashboard-linter"
