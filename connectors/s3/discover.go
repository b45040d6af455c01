package s3

import (
	"context"
	"errors"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/internal/idtemplate"
)

// maxDiscoverKeys bounds how many keys discovery lists.
const maxDiscoverKeys = 100_000

// Discover implements connectors.Discoverer: it lists the bucket's
// current objects and reports, grouped by shape ("uploads/{email}/"), the
// keys holding an email- or phone-shaped identifier, each covered when a
// key or prefix template names it. Keys are read to be classified and
// never kept. Noncurrent versions are not listed: a key whose only
// versions are noncurrent is not seen.
func (c *connector) Discover(ctx context.Context, progress func(connectors.DiscoveryProgress)) (connectors.Coverage, error) {
	var out connectors.Coverage
	var keys []string
	full := false
	p := awss3.NewListObjectsV2Paginator(c.api, &awss3.ListObjectsV2Input{Bucket: &c.bucket})
	for p.HasMorePages() && !full {
		page, err := p.NextPage(ctx)
		if err != nil {
			return out, c.classify(ctx, "ListObjectsV2", "discovery", err)
		}
		for _, o := range page.Contents {
			if len(keys) == maxDiscoverKeys {
				full = true
				break
			}
			keys = append(keys, aws.ToString(o.Key))
		}
		if progress != nil {
			progress(connectors.DiscoveryProgress{Done: len(keys), Unit: "keys"})
		}
	}
	matchers := make([]keyMatcher, len(c.templates))
	for i := range c.templates {
		matchers[i] = newKeyMatcher(&c.templates[i])
	}
	out.Places = int64(len(keys))
	out.Findings = idtemplate.Findings(keys, func(k string) bool {
		for _, m := range matchers {
			if m.names(k) {
				return true
			}
		}
		return false
	}, c.ignore)
	if full {
		return out, errors.New("discovery listed the first 100000 keys only: the rest was not checked")
	}
	return out, nil
}

// keyMatcher tells whether a template names a key: the key itself for a
// key template, any key under it for a prefix, with each placeholder's
// value shaped like its kind.
type keyMatcher struct {
	re      *regexp.Regexp
	holders []string
}

func newKeyMatcher(t *template) keyMatcher {
	var b strings.Builder
	var m keyMatcher
	b.WriteString("^")
	for _, p := range t.parts {
		if p.Placeholder != "" {
			b.WriteString("(.+?)")
			m.holders = append(m.holders, p.Placeholder)
			continue
		}
		b.WriteString(regexp.QuoteMeta(p.Lit))
	}
	if !t.prefix {
		b.WriteString("$")
	}
	m.re = regexp.MustCompile(b.String())
	return m
}

func (m keyMatcher) names(key string) bool {
	sub := m.re.FindStringSubmatch(key)
	if sub == nil {
		return false
	}
	for i, h := range m.holders {
		if !idtemplate.Looks(h, sub[i+1]) {
			return false
		}
	}
	return true
}
