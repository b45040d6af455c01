// Package demo creates the demonstration data `lethe dev` erases: a SQLite
// "shop" database with customers, their orders and newsletter sign-ups, a
// directory of per-customer files (exports and uploads), and an
// "analytics" database that knows people only by the app user id the shop
// keeps beside their email — so the quick start shows Lethe finding that
// id before it erases.
package demo

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // the demo shop is a SQLite file
)

// Customer is one demo data subject.
type Customer struct {
	Email string
	Phone string
	Name  string
}

// CustomerNumber is the customer number the shop gave c (the portal asks
// for it as user_ids.shop).
func (c Customer) CustomerNumber(i int) string { return fmt.Sprintf("C-%05d", 10001+i) }

// AppUserID is the id the shop's app knows c by: all the analytics
// database holds of them.
func (c Customer) AppUserID() string {
	sum := sha256.Sum256([]byte("lethe-demo-app\x00" + c.Email))
	return "usr_" + hex.EncodeToString(sum[:6])
}

// Customers are the demo data subjects; the README lists their emails.
var Customers = []Customer{
	{"alice@example.com", "+447700900001", "Alice Archer"},
	{"bob@example.com", "+447700900002", "Bob Baker"},
	{"carol@example.com", "+447700900003", "Carol Carter"},
	{"dave@example.com", "+447700900004", "Dave Dyer"},
	{"erin@example.com", "+447700900005", "Erin Evans"},
}

const schema = `
CREATE TABLE customers (
    id          INTEGER PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    phone       TEXT,
    name        TEXT NOT NULL,
    address     TEXT,
    customer_no TEXT,
    app_user_id TEXT
);
CREATE TABLE orders (
    id               INTEGER PRIMARY KEY,
    customer_id      INTEGER REFERENCES customers (id),
    email            TEXT,
    shipping_address TEXT,
    total_cents      INTEGER NOT NULL,
    placed_at        TEXT NOT NULL,
    -- Added by a later migration; no statement of the demo's shop-db
    -- connector erases it, so lethe discover reports it (see the README).
    delivery_note    TEXT
);
CREATE TABLE newsletter_signups (
    id        INTEGER PRIMARY KEY,
    email     TEXT NOT NULL,
    signed_up TEXT NOT NULL
);`

const analyticsSchema = `
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    app_user_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE TABLE profiles (
    app_user_id TEXT PRIMARY KEY,
    plan        TEXT NOT NULL,
    last_seen   TEXT NOT NULL
);`

// ShopPath and FilesDir are where the demo data lives under a data dir.
func ShopPath(dataDir string) string { return filepath.Join(dataDir, "shop.db") }

// AnalyticsPath is the demo analytics database.
func AnalyticsPath(dataDir string) string { return filepath.Join(dataDir, "analytics.db") }

// FilesDir is the root of the demo customer files.
func FilesDir(dataDir string) string { return filepath.Join(dataDir, "files") }

// Seed creates the demo data under dataDir unless it already exists, and
// reports whether it created it. Erased customers stay erased across
// restarts; delete the data dir to start over.
func Seed(ctx context.Context, dataDir string) (bool, error) {
	shop := ShopPath(dataDir)
	if _, err := os.Stat(shop); err == nil {
		// A data dir from before the analytics demo: give it one.
		return false, upgrade(ctx, dataDir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	if err := seedAnalytics(ctx, dataDir, Customers); err != nil {
		return false, err
	}
	tmp := shop + ".tmp"
	_ = os.Remove(tmp)
	if err := seedShop(ctx, tmp); err != nil {
		return false, err
	}
	if err := seedFiles(FilesDir(dataDir)); err != nil {
		return false, err
	}
	// The shop appears last and whole, so a crash mid-seed seeds again.
	if err := os.Rename(tmp, shop); err != nil {
		return false, fmt.Errorf("demo: %w", err)
	}
	return true, nil
}

// deliveryNote is what a customer typed at checkout: free text that names
// them.
func deliveryNote(c Customer) string {
	return "Leave it with the neighbour if I am out; questions to " + c.Email
}

func seedShop(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return fmt.Errorf("demo shop: %w", err)
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("demo shop: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("demo shop schema: %w", err)
	}
	for i, c := range Customers {
		id := i + 1
		if _, err := tx.ExecContext(ctx, `INSERT INTO customers (id, email, phone, name, address, customer_no, app_user_id) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id, c.Email, c.Phone, c.Name, fmt.Sprintf("%d Demo Street, Exampleton", id), c.CustomerNumber(i), c.AppUserID()); err != nil {
			return fmt.Errorf("demo shop: %w", err)
		}
		for o := 0; o <= i%3; o++ {
			if _, err := tx.ExecContext(ctx, `INSERT INTO orders (customer_id, email, shipping_address, total_cents, placed_at, delivery_note) VALUES (?, ?, ?, ?, ?, ?)`,
				id, c.Email, fmt.Sprintf("%d Demo Street, Exampleton", id), 1999+o*500, fmt.Sprintf("2026-0%d-1%dT10:00:00Z", o+1, i), deliveryNote(c)); err != nil {
				return fmt.Errorf("demo shop: %w", err)
			}
		}
		if i%2 == 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO newsletter_signups (email, signed_up) VALUES (?, ?)`,
				c.Email, "2025-11-0"+fmt.Sprint(i+1)); err != nil {
				return fmt.Errorf("demo shop: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("demo shop: %w", err)
	}
	return nil
}

// seedAnalytics creates the analytics database (unless it exists) with
// events and a profile for each of customers, under their app user id.
func seedAnalytics(ctx context.Context, dataDir string, customers []Customer) error {
	path := AnalyticsPath(dataDir)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	db, err := sql.Open("sqlite", "file:"+tmp)
	if err != nil {
		return fmt.Errorf("demo analytics: %w", err)
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("demo analytics: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, analyticsSchema); err != nil {
		return fmt.Errorf("demo analytics schema: %w", err)
	}
	for i, c := range customers {
		for e, name := range []string{"signed_up", "viewed_product", "added_to_cart"}[:1+i%3] {
			if _, err := tx.ExecContext(ctx, `INSERT INTO events (app_user_id, name, at) VALUES (?, ?, ?)`,
				c.AppUserID(), name, fmt.Sprintf("2026-0%d-0%dT12:00:00Z", e+1, i+1)); err != nil {
				return fmt.Errorf("demo analytics: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO profiles (app_user_id, plan, last_seen) VALUES (?, ?, ?)`,
			c.AppUserID(), []string{"free", "pro"}[i%2], "2026-11-30"); err != nil {
			return fmt.Errorf("demo analytics: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("demo analytics: %w", err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("demo analytics: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("demo analytics: %w", err)
	}
	return nil
}

// upgrade brings a data dir made by an earlier Lethe up to this demo: the
// shop's customers get their customer numbers and app user ids, and the
// analytics database is made for the customers still in the shop (the
// ones erased stay erased).
func upgrade(ctx context.Context, dataDir string) error {
	db, err := sql.Open("sqlite", "file:"+ShopPath(dataDir)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("demo shop: %w", err)
	}
	defer db.Close()
	var cols string
	if err := db.QueryRowContext(ctx, `SELECT group_concat(name) FROM pragma_table_info('customers')`).Scan(&cols); err != nil {
		return fmt.Errorf("demo shop: %w", err)
	}
	if err := addDeliveryNotes(ctx, db); err != nil {
		return err
	}
	var still []Customer
	for i, c := range Customers {
		if !strings.Contains(cols, "app_user_id") {
			if i == 0 {
				if _, err := db.ExecContext(ctx, `ALTER TABLE customers ADD COLUMN customer_no TEXT; ALTER TABLE customers ADD COLUMN app_user_id TEXT`); err != nil {
					return fmt.Errorf("demo shop: %w", err)
				}
			}
			if _, err := db.ExecContext(ctx, `UPDATE customers SET customer_no = ?, app_user_id = ? WHERE email = ?`,
				c.CustomerNumber(i), c.AppUserID(), c.Email); err != nil {
				return fmt.Errorf("demo shop: %w", err)
			}
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM customers WHERE email = ?`, c.Email).Scan(&n); err != nil {
			return fmt.Errorf("demo shop: %w", err)
		}
		if n > 0 {
			still = append(still, c)
		}
	}
	return seedAnalytics(ctx, dataDir, still)
}

// addDeliveryNotes gives a shop made before orders had delivery notes
// the column and each customer's orders their note (the orders of people
// erased before have no email left to match).
func addDeliveryNotes(ctx context.Context, db *sql.DB) error {
	var cols, has int
	if err := db.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE name = 'delivery_note') FROM pragma_table_info('orders')`).Scan(&cols, &has); err != nil {
		return fmt.Errorf("demo shop: %w", err)
	}
	if cols == 0 || has > 0 { // no orders table, or notes already
		return nil
	}
	if _, err := db.ExecContext(ctx, `ALTER TABLE orders ADD COLUMN delivery_note TEXT`); err != nil {
		return fmt.Errorf("demo shop: %w", err)
	}
	for _, c := range Customers {
		if _, err := db.ExecContext(ctx, `UPDATE orders SET delivery_note = ? WHERE email = ?`, deliveryNote(c), c.Email); err != nil {
			return fmt.Errorf("demo shop: %w", err)
		}
	}
	return nil
}

func seedFiles(root string) error {
	for i, c := range Customers {
		files := map[string]string{
			filepath.Join("exports", c.Email+".csv"):                       "order_id,total\n1,19.99\n",
			filepath.Join("uploads", c.Email, "avatar.png"):                "not really a png",
			filepath.Join("uploads", c.Email, fmt.Sprintf("id-%d.pdf", i)): "not really a pdf",
		}
		for rel, body := range files {
			p := filepath.Join(root, rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
				return fmt.Errorf("demo files: %w", err)
			}
			if err := os.WriteFile(p, []byte(body), 0o640); err != nil {
				return fmt.Errorf("demo files: %w", err)
			}
		}
	}
	return nil
}

// ConnectorsYAML is the connectors section of the dev config: the shop
// database through the sql connector (it also looks people up: their
// customer number, phone and app user id, from their email), the files
// through filesystem, and the analytics database, keyed by the app user id
// only the shop knows.
func ConnectorsYAML(dataDir string) string {
	return fmt.Sprintf(`
  - name: shop-db
    type: sql
    display_name: Online shop
    concurrency: 2
    # It erases by email; phone is searched too once it is known. The
    # shop issues app user ids: when it has none for a person, nothing
    # keyed by one holds anything of them.
    keys: [email]
    authority_for: [user_ids.app]
    # Looked up again a minute after each request completes (so you can
    # watch it happen) and at day 3; a person found again is erased again
    # and the request flagged.
    recheck_after: [1m, 72h]
    config:
      driver: sqlite
      dsn: %[1]q
      resolve:
        - name: customers
          sql: SELECT customer_no, phone, app_user_id FROM customers WHERE email = :email
          kinds: {customer_no: user_ids.shop, phone: phone, app_user_id: user_ids.app}
      statements:
        - name: newsletter_signups
          sql: DELETE FROM newsletter_signups WHERE email = :email
        - name: orders (anonymised)
          sql: UPDATE orders SET email = NULL, shipping_address = NULL, customer_id = NULL WHERE email = :email
        - name: customers
          sql: DELETE FROM customers WHERE email = :email
        - name: customers by phone
          sql: DELETE FROM customers WHERE phone = :phone
      scan:
        - {name: customers, sql: "SELECT email FROM customers", kind: email}
        - {name: newsletter_signups, sql: "SELECT email FROM newsletter_signups", kind: email}
      verify:
        - name: customers
          sql: SELECT count(*) FROM customers WHERE email = :email
        - name: orders
          sql: SELECT count(*) FROM orders WHERE email = :email
        - name: newsletter_signups
          sql: SELECT count(*) FROM newsletter_signups WHERE email = :email
  - name: customer-files
    type: filesystem
    display_name: Customer files
    concurrency: 2
    config:
      root: %[2]q
      paths:
        - exports/{email}.csv
        - uploads/{email}/
  - name: analytics
    type: sql
    display_name: App analytics
    concurrency: 2
    config:
      driver: sqlite
      dsn: %[3]q
      statements:
        - name: events
          sql: DELETE FROM events WHERE app_user_id = :user_ids.app
        - name: profiles
          sql: DELETE FROM profiles WHERE app_user_id = :user_ids.app
      verify:
        - name: events
          sql: SELECT count(*) FROM events WHERE app_user_id = :user_ids.app
        - name: profiles
          sql: SELECT count(*) FROM profiles WHERE app_user_id = :user_ids.app
`, "file:"+ShopPath(dataDir)+"?_pragma=busy_timeout(10000)", FilesDir(dataDir),
		"file:"+AnalyticsPath(dataDir)+"?_pragma=busy_timeout(10000)")
}
