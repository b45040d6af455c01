// Package erasure is Lethe's domain: erasure requests, the data subject they
// are about, the per-system tasks that carry them out, the states both move
// through, the hash-chained event log that records every transition, and the
// error codes the rest of the program speaks.
//
// It has no I/O. Storage, transport and HTTP live in other packages and
// depend on this one, never the other way round.
package erasure
