// Command lethe carries out GDPR Art. 17 erasure requests across an
// organisation's systems and issues signed erasure certificates. See
// README.md, or run `lethe help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/lethe-dev/lethe/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
