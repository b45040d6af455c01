package httpapi

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"

	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/translog"
)

// The transparency log and certificates are public: they hold no personal
// data, and anyone (an auditor, a witness, the data subject) must be able
// to check them without an account.

func (s *server) getCheckpoint() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cp, err := s.Store.LatestCheckpoint(r.Context())
		if errors.Is(err, store.ErrNotFound) {
			err = erasure.Errorf(erasure.ENotFound, "the log is empty")
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(cp.Note)
	})
}

// int64Param reads a non-negative integer query parameter.
func int64Param(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, erasure.Invalid(name, "must be a whole number from 0")
	}
	return n, nil
}

func (s *server) inclusionProof() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var index int64
		if id := r.URL.Query().Get("certificate_id"); id != "" {
			c, err := s.certificateByID(r, id)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			index = c.LogIndex
		} else {
			var err error
			if index, err = int64Param(r, "index"); err != nil {
				s.fail(w, r, err)
				return
			}
		}
		size, err := int64Param(r, "size")
		if err != nil {
			s.fail(w, r, err)
			return
		}
		p, err := s.LogReader.Inclusion(r.Context(), index, size)
		if err != nil {
			s.fail(w, r, erasure.Errorf(erasure.EInvalid, "%s", err))
			return
		}
		writeJSON(w, http.StatusOK, p)
	})
}

func (s *server) consistencyProof() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		from, err := int64Param(r, "from")
		if err != nil {
			s.fail(w, r, err)
			return
		}
		to, err := int64Param(r, "to")
		if err != nil {
			s.fail(w, r, err)
			return
		}
		p, err := s.LogReader.Consistency(r.Context(), from, to)
		if err != nil {
			s.fail(w, r, erasure.Errorf(erasure.EInvalid, "%s", err))
			return
		}
		writeJSON(w, http.StatusOK, p)
	})
}

type logEntryView struct {
	Index int64  `json:"index"`
	Kind  string `json:"kind"`
	// Kid names the key of key entries; certificate entries do not say
	// which certificate they are, so the log cannot be used to enumerate
	// certificates.
	Kid      string `json:"kid,omitempty"`
	LeafData string `json:"leaf_data"` // base64
}

const maxEntries = 1000

func (s *server) listLogEntries() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start, err := int64Param(r, "start")
		if err != nil {
			s.fail(w, r, err)
			return
		}
		end, err := int64Param(r, "end")
		if err != nil || end <= start || end-start > maxEntries {
			s.fail(w, r, erasure.Invalid("end", "must be after start, at most %d entries on", maxEntries))
			return
		}
		es, err := s.Store.LogEntries(r.Context(), start, end)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out := struct {
			Entries []logEntryView `json:"entries"`
		}{Entries: make([]logEntryView, 0, len(es))}
		for _, e := range es {
			v := logEntryView{Index: e.Index, Kind: e.Kind, LeafData: base64.StdEncoding.EncodeToString(e.Data)}
			if e.Kind != translog.KindCertificate && e.Kind != translog.KindRecheck {
				v.Kid = e.Ref
			}
			out.Entries = append(out.Entries, v)
		}
		writeJSON(w, http.StatusOK, out)
	})
}

func (s *server) certificateByID(r *http.Request, id string) (store.Certificate, error) {
	if !erasure.ValidID(id) {
		return store.Certificate{}, erasure.Errorf(erasure.ENotFound, "no certificate with id %q", truncateID(id))
	}
	c, err := s.Store.CertificateByID(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return c, erasure.Errorf(erasure.ENotFound, "no certificate with id %q", id)
	}
	return c, err
}

func (s *server) publicCertificate() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.certificateByID(r, r.PathValue("id"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		_, _ = w.Write(c.Document)
	})
}

func (s *server) certificateSchema(version string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/schema+json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(s.CertificateSchemas[version])
	})
}
