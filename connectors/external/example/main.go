// Command example is a Lethe connector in its own process, written against
// nothing but the NATS message contract (docs/messages.md) and a NATS
// client: no Lethe code. It erases people from a "legacy CRM" kept as a
// directory of JSON files named after their email, and could as well be
// written in any language with a NATS client.
//
//	go run ./connectors/external/example --nats nats://127.0.0.1:4222 --connector legacy-crm --dir /srv/legacy-crm
//
// Lethe's config declares the instance with `type: external`, so Lethe
// creates and tracks its tasks and leaves running it to this process.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// envelope is what the contract's task and result messages share.
type envelope struct {
	V         int    `json:"v"`
	Kind      string `json:"kind"`
	TaskID    string `json:"task_id"`
	RequestID string `json:"request_id"`
	Connector string `json:"connector"`
	Attempt   int    `json:"attempt"`
}

// task is the contract's task message (the fields this connector uses).
type task struct {
	envelope
	Subject struct {
		Email string `json:"email"`
	} `json:"subject"`
}

// result is the contract's result message.
type result struct {
	envelope
	Status       string       `json:"status"`
	Records      int64        `json:"records"`
	Evidence     []evidence   `json:"evidence,omitempty"`
	Verification string       `json:"verification,omitempty"`
	Error        *resultError `json:"error,omitempty"`
	StartedAt    time.Time    `json:"started_at"`
	FinishedAt   time.Time    `json:"finished_at"`
}

type evidence struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

type resultError struct {
	Message   string `json:"message"`
	Permanent bool   `json:"permanent"`
}

func main() {
	url := flag.String("nats", nats.DefaultURL, "NATS server")
	name := flag.String("connector", "", "the connector instance name in Lethe's config")
	dir := flag.String("dir", "", "the legacy CRM: one <email>.json file per customer")
	flag.Parse()
	if *name == "" || *dir == "" {
		log.Fatal("--connector and --dir are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *url, *name, *dir); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, url, name, dir string) error {
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Drain()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	// The durable consumer Lethe's own workers would use: "worker-<name>"
	// on the LETHE_TASKS stream, filtered to this instance's subject.
	cons, err := js.CreateOrUpdateConsumer(ctx, "LETHE_TASKS", jetstream.ConsumerConfig{
		Durable: "worker-" + name, FilterSubject: "lethe.task." + name,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute, MaxAckPending: 4,
	})
	if err != nil {
		return err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { handle(ctx, js, name, dir, m) })
	if err != nil {
		return err
	}
	defer cc.Stop()
	log.Printf("connector %s ready", name) // never log what a task carries
	<-ctx.Done()
	return nil
}

func handle(ctx context.Context, js jetstream.JetStream, name, dir string, m jetstream.Msg) {
	var t task
	if err := json.Unmarshal(m.Data(), &t); err != nil || t.V != 1 {
		_ = m.Term() // not a version we know
		return
	}
	res := result{envelope: t.envelope, StartedAt: time.Now().UTC()}
	res.Connector = name
	n, err := erase(dir, t.Subject.Email)
	res.FinishedAt = time.Now().UTC()
	switch {
	case err != nil:
		res.Status, res.Error = "failed", &resultError{Message: err.Error(), Permanent: errors.Is(err, errBadEmail) || errors.Is(err, errNoEmail)}
	case n == 0:
		res.Status, res.Verification = "not_found", "clean"
	default:
		res.Status, res.Records, res.Verification = "erased", n, "clean"
		res.Evidence = []evidence{{Kind: "files", Value: fmt.Sprintf("%d customer file removed", n)}}
	}
	body, _ := json.Marshal(res)
	// Report first, acknowledge after: a crash in between means the task
	// comes again, and erasing is idempotent.
	id := "result-" + m.Headers().Get(jetstream.MsgIDHeader)
	if id == "result-" {
		sum := sha256.Sum256(m.Data())
		id = "result-" + hex.EncodeToString(sum[:12])
	}
	if _, err := js.Publish(ctx, "lethe.result."+name, body, jetstream.WithMsgID(id)); err != nil {
		_ = m.NakWithDelay(5 * time.Second)
		return
	}
	_ = m.Ack()
}

var (
	errBadEmail = errors.New("the email cannot be a file name here")
	// errNoEmail: the legacy CRM is searched by email only; without one
	// nothing was searched, which is never "not found".
	errNoEmail = errors.New("the task carries no email, and the legacy CRM is searched by email only")
)

// erase removes the customer's file; the email never reaches an error.
func erase(dir, email string) (int64, error) {
	if email == "" {
		return 0, errNoEmail
	}
	if strings.ContainsAny(email, `/\`) || strings.HasPrefix(email, ".") {
		return 0, errBadEmail
	}
	err := os.Remove(filepath.Join(dir, email+".json"))
	switch {
	case err == nil:
		return 1, nil
	case errors.Is(err, os.ErrNotExist):
		return 0, nil
	}
	return 0, errors.New("the legacy CRM directory cannot be written")
}
