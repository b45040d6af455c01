package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/lethe-dev/lethe/internal/erasure"
)

// maxBody caps request bodies: an erasure request is a few hundred bytes.
const maxBody = 64 << 10

// errorBody is every error response: {"error":{"code","message","field"}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

var statusOf = map[string]int{
	erasure.EInvalid:         http.StatusBadRequest,
	erasure.ENotFound:        http.StatusNotFound,
	erasure.EConflict:        http.StatusConflict,
	erasure.EUnauthorized:    http.StatusUnauthorized,
	erasure.EForbidden:       http.StatusForbidden,
	erasure.ETooLarge:        http.StatusRequestEntityTooLarge,
	erasure.EUnavailable:     http.StatusServiceUnavailable,
	erasure.EInternal:        http.StatusInternalServerError,
	"unsupported_media_type": http.StatusUnsupportedMediaType,
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, message, field string) {
	writeJSON(w, status, errorBody{errorDetail{Code: code, Message: message, Field: field}})
}

// writeErr maps an error to its status. Only *erasure.Error messages reach
// the client; anything else is "internal error" and is logged by the caller.
// A dependency that is down is 503 with Retry-After, so that clients and
// load balancers try again rather than give up.
func writeErr(w http.ResponseWriter, err error) {
	code := erasure.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if code == erasure.EUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(int(erasure.RetryUnavailable.Seconds())))
	}
	writeError(w, status, code, erasure.ErrorMessage(err), erasure.ErrorField(err))
}

// decode reads one JSON object into v, strictly, so that no proxy or
// validator in front of Lethe can read the same body differently: the
// Content-Type must be JSON (charset utf-8 if one is named), the body at
// most maxBody bytes of valid UTF-8, and names are matched exactly: a
// duplicate name, a name differing only in case and an unknown name are
// all refused, as is anything after the object. Errors name the field at
// fault ("subject.email").
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeLimit(w, r, v, maxBody)
}

// decodeLimit is decode for a body of up to limit bytes (a batch).
func decodeLimit(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	if err := jsonContentType(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	if r.ContentLength > limit {
		return erasure.Errorf(erasure.ETooLarge, "the body is larger than %d bytes", limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return erasure.Errorf(erasure.ETooLarge, "the body is larger than %d bytes", tooBig.Limit)
		}
		return erasure.Errorf(erasure.EInvalid, "cannot read the body: %v", err)
	}
	return decodeBytes(b, v)
}

// decodeBytes is decode's parser, apart so that it can be fuzzed. It uses
// the JSON v2 semantics (github.com/go-json-experiment/json): duplicate
// names, invalid UTF-8 and lone surrogates are errors, names are
// case-sensitive.
func decodeBytes(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return erasure.Errorf(erasure.EInvalid, "the body is empty: send a JSON object")
	}
	if !utf8.Valid(b) {
		return erasure.Errorf(erasure.EInvalid, "the body is not valid UTF-8")
	}
	if err := jsonv2.Unmarshal(b, v, jsonv2.RejectUnknownMembers(true)); err != nil {
		return decodeError(err)
	}
	return nil
}

// jsonContentType accepts application/json (or a +json type) with no
// parameter but charset=utf-8: JSON is UTF-8 (RFC 8259 §8.1), and a body
// labelled otherwise would be read differently by whoever trusts the label.
func jsonContentType(ct string) error {
	refuse := &erasure.Error{Code: "unsupported_media_type", Message: "send JSON with Content-Type: application/json"}
	if ct == "" {
		return refuse
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return refuse
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return &erasure.Error{Code: "unsupported_media_type", Message: "JSON must be sent as UTF-8: Content-Type: application/json; charset=utf-8, or no parameter"}
		}
	}
	return nil
}

func decodeError(err error) error {
	var syntax *jsontext.SyntacticError
	var sem *jsonv2.SemanticError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return erasure.Errorf(erasure.EInvalid, "the JSON body ends too early")
	case errors.Is(err, jsontext.ErrDuplicateName) && errors.As(err, &syntax):
		return erasure.Invalid(fieldOf(syntax.JSONPointer), "appears more than once")
	case errors.Is(err, jsonv2.ErrUnknownName) && errors.As(err, &sem):
		return erasure.Invalid(fieldOf(sem.JSONPointer), "unknown field (names are case-sensitive)")
	case errors.As(err, &syntax):
		if syntax.JSONPointer == "" && strings.Contains(syntax.Error(), "after top-level value") {
			return erasure.Errorf(erasure.EInvalid, "the body must hold exactly one JSON object")
		}
		if field := fieldOf(syntax.JSONPointer); field != "" {
			return erasure.Invalid(field, "malformed JSON at byte %d (%v)", syntax.ByteOffset, syntax.Err)
		}
		return erasure.Errorf(erasure.EInvalid, "malformed JSON at byte %d", syntax.ByteOffset)
	case errors.As(err, &sem):
		field := fieldOf(sem.JSONPointer)
		if field == "" {
			return erasure.Errorf(erasure.EInvalid, "the body must be a JSON object")
		}
		if sem.GoType == nil {
			return erasure.Invalid(field, "has the wrong type")
		}
		return erasure.Invalid(field, "must be %s", jsonKind(sem.GoType.Kind().String()))
	}
	return erasure.Errorf(erasure.EInvalid, "cannot read the JSON body: %v", err)
}

// fieldOf names the value a JSON Pointer points at the way errors name
// fields: "/subject/email" is "subject.email".
func fieldOf(p jsontext.Pointer) string {
	var parts []string
	for tok := range p.Tokens() {
		parts = append(parts, tok)
	}
	return strings.Join(parts, ".")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	case "bool":
		return "true or false"
	}
	return fmt.Sprintf("of another type (%s)", goKind)
}
