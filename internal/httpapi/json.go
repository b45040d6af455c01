package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

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

// decode reads one JSON object into v, strictly: a JSON content type (or
// none), at most maxBody bytes, no unknown fields, nothing after the object.
// Errors name the field at fault where JSON lets us know it.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &erasure.Error{Code: "unsupported_media_type", Message: "send JSON with Content-Type: application/json"}
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return erasure.Errorf(erasure.EInvalid, "the body must hold exactly one JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		return erasure.Errorf(erasure.EInvalid, "the body is empty: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return erasure.Errorf(erasure.EInvalid, "the JSON body ends too early")
	case errors.As(err, &syntax):
		return erasure.Errorf(erasure.EInvalid, "malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return erasure.Errorf(erasure.EInvalid, "the body must be a JSON object")
		}
		return erasure.Invalid(field, "must be %s", jsonKind(typ.Type.Kind().String()))
	case errors.As(err, &tooBig):
		return erasure.Errorf(erasure.ETooLarge, "the body is larger than %d bytes", tooBig.Limit)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return erasure.Invalid(field, "unknown field")
	}
	return erasure.Errorf(erasure.EInvalid, "cannot read the JSON body: %s", err)
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
