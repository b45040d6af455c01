package translog

import (
	"strings"
	"testing"
)

func TestRecheckLeafRoundTrip(t *testing.T) {
	t.Parallel()
	e := RecheckEvent{CertificateID: "c-1", Connector: "shop-db", After: "72h", Outcome: RecheckFound, Records: 2, At: "2026-12-06T12:00:00Z"}
	leaf, err := RecheckLeaf(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `lethe-log/v1 recheck {"after":"72h","at":"2026-12-06T12:00:00Z","certificate_id":"c-1","connector":"shop-db","outcome":"found","records":2}` + "\n"
	if string(leaf) != want {
		t.Errorf("leaf = %q, want %q", leaf, want)
	}
	back, err := ParseRecheckLeaf(leaf)
	if err != nil || back != e {
		t.Errorf("read back %+v, %v", back, err)
	}
	for name, bad := range map[string]RecheckEvent{
		"unknown outcome":  {CertificateID: "c", Connector: "a", After: "1h", At: "x", Outcome: "fine"},
		"no certificate":   {Connector: "a", After: "1h", At: "x", Outcome: RecheckClean},
		"no connector":     {CertificateID: "c", After: "1h", At: "x", Outcome: RecheckClean},
		"no age":           {CertificateID: "c", Connector: "a", At: "x", Outcome: RecheckClean},
		"no time recorded": {CertificateID: "c", Connector: "a", After: "1h", Outcome: RecheckClean},
	} {
		if _, err := RecheckLeaf(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, data := range []string{"", "lethe-log/v1 key {}", "lethe-log/v1 recheck {not json"} {
		if _, err := ParseRecheckLeaf([]byte(data)); err == nil || !strings.HasPrefix(err.Error(), "translog:") {
			t.Errorf("%q: %v", data, err)
		}
	}
}
