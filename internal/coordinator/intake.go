package coordinator

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"go.uber.org/zap"
)

// FileInput is a new request as staff or the portal sent it.
type FileInput struct {
	Subject      erasure.Subject
	Jurisdiction string
	Source       string // "api", "portal", "cli"
	Actor        string // who filed it, for the event log
	// IdempotencyKey makes a retried submission return the first request.
	IdempotencyKey string
	// Batch names the batch the request is filed in (see
	// erasure.Request.Batch); empty when filed alone.
	Batch string
	// Hold files the request in this status without starting it:
	// unverified (the portal, until the person proves the email) or
	// pending_approval (staff must approve). Empty: start at once.
	Hold erasure.RequestStatus
	// Also runs in the filing transaction after the request is stored
	// (the portal stores its side of the request with it): an error
	// files nothing.
	Also func(ctx context.Context, tx store.Tx, req erasure.Request) error
}

const maxIdempotencyKey = 200

// File validates in, stores the request with one task per connector and
// queues the tasks. created is false when the idempotency key matched an
// existing request, which is returned instead.
func (c *Coordinator) File(ctx context.Context, in FileInput) (req erasure.Request, created bool, err error) {
	if len(in.IdempotencyKey) > maxIdempotencyKey || !utf8.ValidString(in.IdempotencyKey) {
		return req, false, erasure.Invalid("Idempotency-Key", "at most %d bytes of text", maxIdempotencyKey)
	}
	idemKey := erasure.HashIdempotencyKey(in.IdempotencyKey)
	if idemKey != "" {
		if existing, err := c.store.RequestByIdempotencyKey(ctx, idemKey); err == nil {
			return existing, false, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return req, false, err
		}
	}
	if in.Batch != "" {
		if err := erasure.CheckBatch(in.Batch); err != nil {
			return req, false, err
		}
	}
	subject, err := in.Subject.Normalize()
	if err != nil {
		return req, false, err
	}
	j, err := erasure.ParseJurisdiction(in.Jurisdiction)
	if err != nil {
		return req, false, err
	}
	if len(c.cfg.Connectors) == 0 {
		return req, false, erasure.Errorf(erasure.EUnavailable, "no connectors are configured: nothing could be erased")
	}
	if in.Hold != "" && in.Hold != erasure.RequestUnverified && in.Hold != erasure.RequestPendingApproval {
		return req, false, fmt.Errorf("coordinator: cannot hold a new request as %s", in.Hold)
	}
	now := c.clock()
	ref := c.hasher.Ref(subject)
	var nonce []byte
	if subject.Email != "" {
		nonce = make([]byte, 32)
		if _, err := rand.Read(nonce); err != nil {
			return req, false, fmt.Errorf("commitment nonce: %w", err)
		}
		ref.Commitment = erasure.Commit(nonce, subject.Email)
	}
	sources := erasure.Sources{}
	for _, k := range subject.Kinds() {
		sources[k] = erasure.SourceRequest
	}
	req = erasure.Request{
		ID: erasure.NewID(), Status: erasure.RequestReceived, Jurisdiction: j,
		Subject: subject, SubjectRef: ref, CommitmentNonce: nonce, Source: in.Source, Sources: sources,
		IdempotencyKey: idemKey, CreatedBy: in.Actor, Batch: in.Batch,
		ReceivedAt: now, DueAt: erasure.Timestamp(j.DueDate(now)), UpdatedAt: now,
	}
	kinds := make([]string, 0, 3)
	for _, id := range subject.Identifiers() {
		kinds = append(kinds, id.Kind)
	}
	err = c.store.InTx(ctx, func(tx store.Tx) error {
		r := req
		if err := tx.InsertRequest(ctx, r); err != nil {
			return err
		}
		if in.Also != nil {
			if err := in.Also(ctx, tx, r); err != nil {
				return err
			}
		}
		data := map[string]any{"source": in.Source, "jurisdiction": j, "due_at": r.DueAt, "identifiers": kinds}
		if in.Batch != "" {
			data["batch"] = in.Batch
		}
		if _, err := tx.AppendEvent(ctx, erasure.NewEvent(r.ID, "", erasure.EventRequestReceived, in.Actor, "", data, now)); err != nil {
			return err
		}
		if in.Hold != "" {
			_, err := setStatus(ctx, tx, &r, in.Hold, in.Actor, "", now)
			req = r
			return err
		}
		if err := c.start(ctx, tx, &r, in.Actor, "", now); err != nil {
			return err
		}
		req = r
		return nil
	})
	if erasure.ErrorCode(err) == erasure.EConflict && idemKey != "" {
		// Someone filed the same key between our check and our insert.
		existing, gerr := c.store.RequestByIdempotencyKey(ctx, idemKey)
		if gerr == nil {
			return existing, false, nil
		}
	}
	if err != nil {
		return erasure.Request{}, false, err
	}
	c.crash.Hit("intake.after_commit")
	c.log.Info("request filed", zap.String("request_id", req.ID), zap.String("jurisdiction", string(j)),
		zap.String("source", in.Source), zap.Int("tasks", len(c.cfg.Connectors)))
	c.metrics.RequestFiled(string(j), in.Source)
	c.nudge()
	return req, true, nil
}

// start moves a request to in_progress and begins its work: the
// resolvers look the person up first, then every instance erases.
func (c *Coordinator) start(ctx context.Context, tx store.Tx, r *erasure.Request, actor, reason string, now time.Time) error {
	if _, err := setStatus(ctx, tx, r, erasure.RequestInProgress, actor, reason, now); err != nil {
		return err
	}
	return c.begin(ctx, tx, r, actor, now)
}
