// Package all registers every built-in connector type. Import it for its
// side effect; a new connector adds one line here.
package all

import (
	_ "github.com/lethe-dev/lethe/connectors/external"   // connectors in their own process
	_ "github.com/lethe-dev/lethe/connectors/filesystem" // local file trees
	_ "github.com/lethe-dev/lethe/connectors/manual"     // tasks a person completes
	_ "github.com/lethe-dev/lethe/connectors/sql"        // PostgreSQL, MySQL/MariaDB, SQLite
)
