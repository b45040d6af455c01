package certificate_test

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/store/postgres"
	"github.com/lethe-dev/lethe/internal/testenv"
	"github.com/lethe-dev/lethe/internal/translog"
)

// BenchmarkIssue issues certificates with their log appends (signature,
// leaf, tree hashes, signed checkpoint, inclusion proof, one transaction
// each) against SQLite and PostgreSQL; the baselines are a bare Ed25519
// signature and a transaction that locks one row and commits on the same
// PostgreSQL.
//
//	go test -run '^$' -bench 'Issue|Verify' ./internal/certificate/
func BenchmarkIssue(b *testing.B) {
	priv, _ := certificate.GenerateKey()
	b.Run("baseline=ed25519_sign", func(b *testing.B) {
		msg := []byte(strings.Repeat("x", 1500))
		for b.Loop() {
			ed25519.Sign(priv, msg)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signs/s")
	})
	b.Run("baseline=postgres_lock_commit", func(b *testing.B) {
		st := openPostgres(b)
		for b.Loop() {
			err := st.InTx(context.Background(), func(tx store.Tx) error {
				_, err := tx.LockLog(context.Background())
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
	})
	for name, open := range map[string]func(testing.TB) store.Store{"sqlite": openStore, "postgres": openPostgres} {
		b.Run("store="+name, func(b *testing.B) {
			st := open(b)
			iss := issuer(b, priv)
			req, tasks := fixture(b)
			for b.Loop() {
				err := st.InTx(context.Background(), func(tx store.Tx) error {
					_, err := iss.Issue(context.Background(), tx, req, tasks, strings.Repeat("ab", 32), req.CompletedAt)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certificates/s")
		})
	}
}

// BenchmarkVerify verifies a certificate (canonical form, signature,
// evidence digests, checkpoint signature, inclusion proof in a log of
// 1,000 entries); the baseline is one bare Ed25519 verification.
func BenchmarkVerify(b *testing.B) {
	priv, _ := certificate.GenerateKey()
	pub := priv.Public().(ed25519.PublicKey)
	b.Run("baseline=ed25519_verify", func(b *testing.B) {
		msg := []byte(strings.Repeat("x", 1500))
		sig := ed25519.Sign(priv, msg)
		for b.Loop() {
			ed25519.Verify(pub, msg, sig)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
	})
	b.Run("certificate", func(b *testing.B) {
		st := openStore(b)
		iss := issuer(b, priv)
		req, tasks := fixture(b)
		var doc []byte
		for i := range 1000 {
			err := st.InTx(context.Background(), func(tx store.Tx) error {
				c, err := iss.Issue(context.Background(), tx, req, tasks, strings.Repeat("ab", 32), req.CompletedAt)
				if i == 500 {
					doc = c.Document
				}
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		keys := certificate.JWKS{Keys: []certificate.JWK{iss.Signer.PublicJWK()}}
		for b.Loop() {
			if _, err := certificate.Verify(doc, keys); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
	})
}

func issuer(tb testing.TB, priv ed25519.PrivateKey) *certificate.Issuer {
	ls, err := translog.NewLogSigner(testOrigin, priv)
	if err != nil {
		tb.Fatal(err)
	}
	return &certificate.Issuer{Signer: certificate.NewSigner(priv), Log: translog.NewLog(testOrigin, ls), Options: certificate.Options{Issuer: "Example Ltd", BackupRetention: 30 * 24 * time.Hour}}
}

func openPostgres(tb testing.TB) store.Store {
	url := testenv.PostgresSchema(tb)
	if _, err := postgres.Migrate(context.Background(), url); err != nil {
		tb.Fatal(err)
	}
	st, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(st.Close)
	return st
}
