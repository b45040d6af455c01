package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
	"github.com/lethe-dev/lethe/internal/store"
)

// outage marks err with store.ErrUnavailable when it says the database
// cannot be reached: the server is down, restarting or refusing
// connections, the network dropped, or no connection came in time. Every
// other error is returned as it is: constraint violations, bad SQL and the
// caller's own cancellation are not outages.
func outage(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	// The caller gave up (a client went away, a process is stopping):
	// whatever pgx says then, the database did nothing wrong.
	if errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled) {
		return err
	}
	if isOutage(err) {
		return store.Unavailable(err)
	}
	return err
}

func isOutage(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		// The server answered: only the codes that say it cannot serve
		// now. A ConnectError that holds one (a wrong password, no such
		// database) is a configuration mistake, not an outage.
		return outageState(pg.Code)
	}
	var connect *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connect), // refused, unreachable, timed out dialling
		errors.As(err, &netErr),                                     // reset, broken pipe, read timeouts
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), // the server hung up mid-answer
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, puddle.ErrClosedPool),
		errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err): // no connection, or no answer, in time
		return true
	}
	return false
}

// outageState reports the SQLSTATEs of a server that cannot serve now:
// class 08 (connection exceptions), 57P01 admin_shutdown, 57P02
// crash_shutdown, 57P03 cannot_connect_now (starting up, shutting down,
// in recovery) and 53300 too_many_connections.
func outageState(code string) bool {
	switch code {
	case "57P01", "57P02", "57P03", "53300":
		return true
	}
	return strings.HasPrefix(code, "08")
}
