package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
)

// slowDownPause is how long the instance pauses after S3 says SlowDown
// without naming a delay (S3 names none): AWS asks clients to back off.
const slowDownPause = 2 * time.Second

// S3 error codes, by what they call for.
var (
	deniedCodes = map[string]bool{
		"AccessDenied": true, "AllAccessDisabled": true, "AccountProblem": true,
		"InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "InvalidSecurity": true,
		"InvalidToken": true, "ExpiredToken": true, "NotSignedUp": true, "UnauthorizedAccess": true,
	}
	throttleCodes = map[string]bool{
		"SlowDown": true, "ServiceUnavailable": true, "TooManyRequests": true,
		"Throttling": true, "ThrottlingException": true, "RequestLimitExceeded": true,
	}
	regionCodes = map[string]bool{
		"PermanentRedirect": true, "AuthorizationHeaderMalformed": true, "IllegalLocationConstraintException": true,
	}
)

// classify turns an SDK error into one the runtime can act on. The SDK's
// own message is never used: it can quote the request URL, whose path or
// prefix holds the subject's identifiers. Only the status and the S3 error
// code go into the message.
func (c *connector) classify(ctx context.Context, op, tmpl string, err error) error {
	where := fmt.Sprintf("S3 %s on bucket %s", op, c.bucket)
	if tmpl != "" {
		where += " (" + tmpl + ")"
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: interrupted: %w", where, ctxErr)
	}
	var status int
	var header http.Header
	var withStatus interface{ HTTPStatusCode() int }
	if errors.As(err, &withStatus) {
		status = withStatus.HTTPStatusCode()
	}
	var withResp interface{ HTTPResponse() *smithyhttp.Response }
	if errors.As(err, &withResp) && withResp.HTTPResponse() != nil && withResp.HTTPResponse().Response != nil {
		header = withResp.HTTPResponse().Header
	}
	var code string
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = safeCode(apiErr.ErrorCode())
	}
	var deser *smithy.DeserializationError
	if status == 0 && code == "" {
		var ne net.Error
		switch {
		case errors.As(err, &deser):
			return connectors.Retryable(fmt.Errorf("%s: unreadable response", where), 0)
		case errors.As(err, &ne) && ne.Timeout():
			return connectors.Retryable(fmt.Errorf("%s: timed out", where), 0)
		}
		return connectors.Retryable(fmt.Errorf("%s: no answer from the store", where), 0)
	}
	what := where + ": " + statusText(status, code)
	retryAfter := vendorhttp.ParseRetryAfter(header.Get("Retry-After"), time.Now())
	switch {
	case throttleCodes[code] || status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		if retryAfter <= 0 {
			retryAfter = slowDownPause
		}
		return connectors.Retryable(fmt.Errorf("%s: the store asks to slow down", what), retryAfter)
	case code == "NoSuchBucket":
		return connectors.Permanentf("%s: the bucket does not exist; check bucket, region and base_url", what)
	case code == "InvalidBucketName":
		return connectors.Permanentf("%s: the store refuses the bucket name; check bucket", what)
	case regionCodes[code]:
		return connectors.Permanentf("%s: the bucket is in another region or behind another endpoint; check region and base_url", what)
	case code == "NotImplemented" || status == http.StatusNotImplemented:
		hint := ""
		if op == "GetBucketVersioning" {
			hint = "; set versioning: versioned or unversioned in the config"
		}
		return connectors.Permanentf("%s: the store does not support this call%s", what, hint)
	case deniedCodes[code] || status == http.StatusUnauthorized || status == http.StatusForbidden:
		return connectors.Permanentf("%s: the credentials were refused or lack permission; check access_key_id and secret_access_key, "+
			"and that they may s3:ListBucket, s3:ListBucketVersions, s3:GetBucketVersioning, s3:DeleteObject and s3:DeleteObjectVersion on the bucket", what)
	case status >= 500 || code == "InternalError" || code == "RequestTimeout" || code == "RequestTimeTooSkewed":
		return connectors.Retryable(fmt.Errorf("%s: the store failed", what), retryAfter)
	case errors.As(err, &deser):
		return connectors.Retryable(fmt.Errorf("%s: unreadable response", what), 0)
	case status == http.StatusNotFound:
		return connectors.Permanentf("%s: not found; check bucket, base_url and use_path_style", what)
	}
	return connectors.Permanentf("%s: the store refused the request", what)
}

func statusText(status int, code string) string {
	switch {
	case status == 0:
		return code
	case code == "":
		return fmt.Sprintf("%d %s", status, http.StatusText(status))
	}
	return fmt.Sprintf("%d %s", status, code)
}

var codeRe = regexp.MustCompile(`^[A-Za-z0-9.]{1,64}$`)

// safeCode keeps an S3 error code out of messages unless it looks like one:
// a store could put anything in the XML.
func safeCode(code string) string {
	if codeRe.MatchString(code) {
		return code
	}
	if code == "" {
		return "no error code"
	}
	return "unrecognised error code"
}

// objectLocked recognises a version that Object Lock keeps: AWS answers
// AccessDenied "…protected by object lock", MinIO ObjectLocked "…WORM
// protected…".
func objectLocked(code, message string) bool {
	m := strings.ToLower(message)
	return code == "ObjectLocked" || strings.Contains(m, "object lock") || strings.Contains(m, "worm") || strings.Contains(m, "legal hold")
}
