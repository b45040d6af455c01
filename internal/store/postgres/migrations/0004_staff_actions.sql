-- Staff actions: a deadline extended once, a system exempted on a legal basis.
ALTER TABLE requests ADD COLUMN extended_at timestamptz;
ALTER TABLE tasks ADD COLUMN exemption_basis text NOT NULL DEFAULT '';
