// Package all registers every built-in connector type. Import it for its
// side effect; a new connector adds one line here.
package all

import (
	_ "github.com/lethe-dev/lethe/connectors/amplitude"  // Amplitude user privacy deletions
	_ "github.com/lethe-dev/lethe/connectors/braze"      // Braze users (delete by braze_id after an export look-up)
	_ "github.com/lethe-dev/lethe/connectors/email"      // processors reached by email only
	_ "github.com/lethe-dev/lethe/connectors/external"   // connectors in their own process
	_ "github.com/lethe-dev/lethe/connectors/filesystem" // local file trees
	_ "github.com/lethe-dev/lethe/connectors/httpapi"    // any HTTP vendor described in config
	_ "github.com/lethe-dev/lethe/connectors/hubspot"    // HubSpot CRM (GDPR delete)
	_ "github.com/lethe-dev/lethe/connectors/intercom"   // Intercom contacts (permanent contact delete, archived users by an opt-in probe)
	_ "github.com/lethe-dev/lethe/connectors/iterable"   // Iterable user profiles (GDPR forget)
	_ "github.com/lethe-dev/lethe/connectors/klaviyo"    // Klaviyo profiles (Data Privacy API deletion)
	_ "github.com/lethe-dev/lethe/connectors/mailchimp"  // Mailchimp audiences
	_ "github.com/lethe-dev/lethe/connectors/manual"     // tasks a person completes
	_ "github.com/lethe-dev/lethe/connectors/mixpanel"   // Mixpanel GDPR/CCPA deletions
	_ "github.com/lethe-dev/lethe/connectors/s3"         // S3-compatible object stores
	_ "github.com/lethe-dev/lethe/connectors/salesforce" // Salesforce (Bulk API 2.0 hard delete)
	_ "github.com/lethe-dev/lethe/connectors/segment"    // Segment regulations
	_ "github.com/lethe-dev/lethe/connectors/sendgrid"   // SendGrid Marketing Campaigns contacts
	_ "github.com/lethe-dev/lethe/connectors/shopify"    // Shopify customers (customer data erasure, days later)
	_ "github.com/lethe-dev/lethe/connectors/sql"        // PostgreSQL, MySQL/MariaDB, SQLite
	_ "github.com/lethe-dev/lethe/connectors/stripe"     // Stripe customers (deletion, or redaction jobs)
	_ "github.com/lethe-dev/lethe/connectors/webhook"    // in-house systems over OpenDSR 2.0
	_ "github.com/lethe-dev/lethe/connectors/zendesk"    // Zendesk Support end users and the tickets they requested
)
