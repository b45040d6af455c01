package bus

import (
	"strings"
	"testing"
)

func TestDecodeResolveMessages(t *testing.T) {
	t.Parallel()
	task := `{"v":1,"kind":"resolve","task_id":"t","request_id":"r","connector":"shop-db","attempt":1,"subject":{"email":"a@example.com"}}`
	if got, err := DecodeTask([]byte(task)); err != nil || got.Kind != KindResolve {
		t.Fatalf("resolve task: %+v, %v", got, err)
	}
	ok := `{"v":1,"kind":"resolve","task_id":"t","attempt":1,"status":"resolved","searched_by":["email"],"identifiers":{"user_ids.app":["u-1","u-2"]}}`
	r, err := DecodeResult([]byte(ok))
	if err != nil || len(r.Identifiers["user_ids.app"]) != 2 || r.SearchedBy[0] != "email" {
		t.Fatalf("resolved result: %+v, %v", r, err)
	}
	for name, tc := range map[string]struct{ body, want string }{
		"identifiers on an erase": {`{"v":1,"kind":"erase","task_id":"t","attempt":1,"status":"erased","identifiers":{"email":["x@example.com"]}}`, "only a resolved result"},
		"resolved for an erase":   {`{"v":1,"kind":"erase","task_id":"t","attempt":1,"status":"resolved"}`, "resolved answers a resolve task"},
		"not found for a resolve": {`{"v":1,"kind":"resolve","task_id":"t","attempt":1,"status":"not_found"}`, "answers resolved or failed"},
		"running resolve":         {`{"v":1,"kind":"resolve","task_id":"t","attempt":1,"status":"running","job_ref":"j"}`, "cannot be running"},
	} {
		if _, err := DecodeResult([]byte(tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", name, err, tc.want)
		}
	}
	uncounted := `{"v":1,"kind":"poll","task_id":"t","attempt":1,"status":"erased","job_ref":"j","records_unknown":true}`
	if r, err := DecodeResult([]byte(uncounted)); err != nil || !r.RecordsUnknown {
		t.Errorf("uncounted result: %+v, %v", r, err)
	}
}

func TestDecodeRecheckMessages(t *testing.T) {
	t.Parallel()
	task := `{"v":1,"kind":"recheck","task_id":"t","request_id":"r","connector":"shop-db","attempt":1,"follow_up":true,"subject":{"email":"a@example.com"}}`
	if got, err := DecodeTask([]byte(task)); err != nil || got.Kind != KindRecheck || !got.FollowUp {
		t.Fatalf("recheck task: %+v, %v", got, err)
	}
	for _, ok := range []string{
		`{"v":1,"kind":"recheck","task_id":"t","attempt":1,"status":"not_found","verification":"clean"}`,
		`{"v":1,"kind":"recheck","task_id":"t","attempt":1,"status":"found","records":2}`,
		`{"v":1,"kind":"recheck","task_id":"t","attempt":1,"status":"failed","error":{"message":"timeout"}}`,
	} {
		if _, err := DecodeResult([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for name, tc := range map[string]struct{ body, want string }{
		"erased by a re-check":  {`{"v":1,"kind":"recheck","task_id":"t","attempt":1,"status":"erased","records":1}`, "erases nothing"},
		"found without records": {`{"v":1,"kind":"recheck","task_id":"t","attempt":1,"status":"found"}`, "number of records"},
		"found for an erase":    {`{"v":1,"kind":"erase","task_id":"t","attempt":1,"status":"found","records":1}`, "found answers a re-check"},
		"running re-check":      {`{"v":1,"kind":"recheck","task_id":"t","attempt":1,"status":"running","job_ref":"j"}`, "cannot be running"},
	} {
		if _, err := DecodeResult([]byte(tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", name, err, tc.want)
		}
	}
}
