package s3_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
)

// TestDiscover: objects named after people are found by the shape of
// their keys; shapes a key or prefix template names are covered, others
// uncovered, ignored prefixes say why, and no key reaches the report.
func TestDiscover(t *testing.T) {
	t.Parallel()
	f := newFake(t, "Enabled")
	f.SetPageSize(4) // several pages
	for i := range 3 {
		e := fmt.Sprintf("p%d@example.com", i)
		f.Put(bucket, "exports/"+e+".csv")
		f.Put(bucket, "uploads/"+e+"/a.jpg")
		f.Put(bucket, "uploads/"+e+"/b.jpg")
		f.Put(bucket, "backups/"+e+".tar")
		f.Put(bucket, "legal/"+e+".pdf")
	}
	f.Put(bucket, "exports/+4930123456.csv") // {email} does not name a phone number
	f.Put(bucket, "assets/logo.png")
	c := connector(t, f, "ignore: [{place: legal/, reason: litigation hold}]").(connectors.Discoverer)
	var steps int
	cov, err := c.Discover(context.Background(), func(connectors.DiscoveryProgress) { steps++ })
	if err != nil {
		t.Fatal(err)
	}
	connectortest.CheckFindings(t, cov, 17, map[string]string{
		"exports/{email}.csv": "covered 3: a path template names them",
		"uploads/{email}/":    "covered 6: a path template names them",
		"backups/{email}.tar": "uncovered 3: no path template names them",
		"legal/{email}.pdf":   "ignored 3: ignored: litigation hold",
		"exports/{phone}.csv": "uncovered 1: no path template names them",
	}, "example.com", "4930")
	if steps < 4 {
		t.Errorf("%d progress calls, want one a page at least", steps)
	}

	// A refused listing is an error naming no key.
	refused := connector(t, f, "access_key_id: AKIAREFUSED").(connectors.Discoverer)
	if _, err := refused.Discover(context.Background(), nil); err == nil || strings.Contains(err.Error(), "example.com") {
		t.Errorf("Discover with refused credentials = %v", err)
	}
	if _, err := connectortest.TryBuild("s3", "x", f.ConfigWith("ignore: [{place: legal/}]")); err == nil || !strings.Contains(err.Error(), "ignore[0].reason") {
		t.Errorf("an ignore entry without a reason: %v", err)
	}
}
