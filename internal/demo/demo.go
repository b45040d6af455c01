// Package demo creates the demonstration data `lethe dev` erases: a SQLite
// "shop" database with customers, their orders and newsletter sign-ups, and
// a directory of per-customer files (exports and uploads).
package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // the demo shop is a SQLite file
)

// Customer is one demo data subject.
type Customer struct {
	Email string
	Phone string
	Name  string
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
    id      INTEGER PRIMARY KEY,
    email   TEXT NOT NULL UNIQUE,
    phone   TEXT,
    name    TEXT NOT NULL,
    address TEXT
);
CREATE TABLE orders (
    id               INTEGER PRIMARY KEY,
    customer_id      INTEGER REFERENCES customers (id),
    email            TEXT,
    shipping_address TEXT,
    total_cents      INTEGER NOT NULL,
    placed_at        TEXT NOT NULL
);
CREATE TABLE newsletter_signups (
    id        INTEGER PRIMARY KEY,
    email     TEXT NOT NULL,
    signed_up TEXT NOT NULL
);`

// ShopPath and FilesDir are where the demo data lives under a data dir.
func ShopPath(dataDir string) string { return filepath.Join(dataDir, "shop.db") }

// FilesDir is the root of the demo customer files.
func FilesDir(dataDir string) string { return filepath.Join(dataDir, "files") }

// Seed creates the demo data under dataDir unless it already exists, and
// reports whether it created it. Erased customers stay erased across
// restarts; delete the data dir to start over.
func Seed(ctx context.Context, dataDir string) (bool, error) {
	shop := ShopPath(dataDir)
	if _, err := os.Stat(shop); err == nil {
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
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
		if _, err := tx.ExecContext(ctx, `INSERT INTO customers (id, email, phone, name, address) VALUES (?, ?, ?, ?, ?)`,
			id, c.Email, c.Phone, c.Name, fmt.Sprintf("%d Demo Street, Exampleton", id)); err != nil {
			return fmt.Errorf("demo shop: %w", err)
		}
		for o := 0; o <= i%3; o++ {
			if _, err := tx.ExecContext(ctx, `INSERT INTO orders (customer_id, email, shipping_address, total_cents, placed_at) VALUES (?, ?, ?, ?, ?)`,
				id, c.Email, fmt.Sprintf("%d Demo Street, Exampleton", id), 1999+o*500, fmt.Sprintf("2026-0%d-1%dT10:00:00Z", o+1, i)); err != nil {
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
// database through the sql connector and the files through filesystem.
func ConnectorsYAML(dataDir string) string {
	return fmt.Sprintf(`
  - name: shop-db
    type: sql
    concurrency: 2
    config:
      driver: sqlite
      dsn: %q
      statements:
        - name: newsletter_signups
          sql: DELETE FROM newsletter_signups WHERE email = :email
        - name: orders (anonymised)
          sql: UPDATE orders SET email = NULL, shipping_address = NULL, customer_id = NULL WHERE email = :email
        - name: customers
          sql: DELETE FROM customers WHERE email = :email
        - name: customers by phone
          sql: DELETE FROM customers WHERE phone = :phone
      verify:
        - name: customers
          sql: SELECT count(*) FROM customers WHERE email = :email
        - name: orders
          sql: SELECT count(*) FROM orders WHERE email = :email
        - name: newsletter_signups
          sql: SELECT count(*) FROM newsletter_signups WHERE email = :email
  - name: customer-files
    type: filesystem
    concurrency: 2
    config:
      root: %q
      paths:
        - exports/{email}.csv
        - uploads/{email}/
`, "file:"+ShopPath(dataDir)+"?_pragma=busy_timeout(10000)", FilesDir(dataDir))
}
