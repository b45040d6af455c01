package demo

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
)

// TestUpgradeOfAnOlderDataDir: a data dir seeded before the analytics demo
// (customers without app user ids, alice already erased) gains the ids and
// an analytics database holding only the customers still in the shop.
func TestUpgradeOfAnOlderDataDir(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+ShopPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, phone TEXT, name TEXT NOT NULL, address TEXT);
		CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, email TEXT, shipping_address TEXT, total_cents INTEGER NOT NULL, placed_at TEXT NOT NULL)`)
	for i, c := range Customers[1:] {
		if err == nil {
			_, err = db.Exec(`INSERT INTO customers (id, email, phone, name) VALUES (?, ?, ?, ?)`, i+2, c.Email, c.Phone, c.Name)
		}
		if err == nil {
			_, err = db.Exec(`INSERT INTO orders (customer_id, email, total_cents, placed_at) VALUES (?, ?, 100, '2026-01-01')`, i+2, c.Email)
		}
	}
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if created, err := Seed(context.Background(), dir); err != nil || created {
			t.Fatalf("Seed = %v, %v", created, err)
		}
	}
	db, _ = sql.Open("sqlite", "file:"+ShopPath(dir))
	defer db.Close()
	var app, no string
	if err := db.QueryRow(`SELECT app_user_id, customer_no FROM customers WHERE email = ?`, Customers[1].Email).Scan(&app, &no); err != nil ||
		app != Customers[1].AppUserID() || no != Customers[1].CustomerNumber(1) {
		t.Fatalf("bob after the upgrade: %q %q %v", app, no, err)
	}
	var note string
	if err := db.QueryRow(`SELECT delivery_note FROM orders WHERE email = ?`, Customers[1].Email).Scan(&note); err != nil || note != deliveryNote(Customers[1]) {
		t.Errorf("bob's order after the upgrade has delivery note %q, %v", note, err)
	}
	an, _ := sql.Open("sqlite", "file:"+AnalyticsPath(dir))
	defer an.Close()
	count := func(id string) (n int) {
		if err := an.QueryRow(`SELECT count(*) FROM profiles WHERE app_user_id = ?`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count(Customers[0].AppUserID()) != 0 || count(Customers[1].AppUserID()) != 1 {
		t.Error("analytics must hold the customers still in the shop, and not alice, erased before")
	}
	if _, err := os.Stat(filepath.Join(dir, "analytics.db.tmp")); !os.IsNotExist(err) {
		t.Error("a temporary file was left behind")
	}
}

func TestFreshSeed(t *testing.T) {
	dir := t.TempDir()
	if created, err := Seed(context.Background(), dir); err != nil || !created {
		t.Fatalf("Seed = %v, %v", created, err)
	}
	an, _ := sql.Open("sqlite", "file:"+AnalyticsPath(dir))
	defer an.Close()
	var n int
	if err := an.QueryRow(`SELECT count(DISTINCT app_user_id) FROM events`).Scan(&n); err != nil || n != len(Customers) {
		t.Errorf("analytics people = %d, %v", n, err)
	}
	if Customers[0].AppUserID() == Customers[1].AppUserID() || len(Customers[0].AppUserID()) < 12 {
		t.Error("app user ids must be distinct and long enough to find in a log")
	}
}
