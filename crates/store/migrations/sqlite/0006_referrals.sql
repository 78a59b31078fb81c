-- The referral engine: versioned reward rules, referrals (one per friend),
-- and the rewards they made. Points and cashback rewards are ledger grants
-- (grant_key); coupons, certificates and cash payouts are records here.

CREATE TABLE referral_rules (
    program_id     BLOB NOT NULL REFERENCES programs (program_id),
    version        INTEGER NOT NULL,
    effective_from TEXT NOT NULL,
    rules          TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (program_id, version)
) STRICT, WITHOUT ROWID;

-- A friend is bound to one referrer, once: (program_id, friend_id) is unique.
CREATE TABLE referrals (
    program_id     BLOB NOT NULL REFERENCES programs (program_id),
    referral_id    BLOB NOT NULL,
    referrer_id    BLOB NOT NULL,
    friend_id      BLOB NOT NULL,
    code           TEXT,
    channel        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('clicked', 'signed_up', 'qualified', 'rewarded', 'review', 'rejected')),
    touched_at     TEXT NOT NULL,
    signed_up_at   TEXT NOT NULL,
    qualified_at   TEXT,
    rewarded_at    TEXT,
    rejected_at    TEXT,
    reject_reason  TEXT,
    fraud_reasons  TEXT NOT NULL DEFAULT '[]',
    email_norm     TEXT,
    phone          TEXT,
    payment_fp     TEXT,
    device_hash    TEXT,
    ip_hash        TEXT,
    order_key      TEXT,
    order_amount   INTEGER,
    rules_version  INTEGER,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (program_id, referral_id),
    UNIQUE (program_id, friend_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX referrals_by_referrer ON referrals (program_id, referrer_id, status);
CREATE INDEX referrals_by_status ON referrals (program_id, status, referral_id);
CREATE INDEX referrals_by_email ON referrals (program_id, email_norm) WHERE email_norm IS NOT NULL;
CREATE INDEX referrals_by_phone ON referrals (program_id, phone) WHERE phone IS NOT NULL;
CREATE INDEX referrals_by_payment ON referrals (program_id, payment_fp) WHERE payment_fp IS NOT NULL;
CREATE INDEX referrals_by_device ON referrals (program_id, device_hash, created_at) WHERE device_hash IS NOT NULL;
CREATE INDEX referrals_by_ip ON referrals (program_id, ip_hash, created_at) WHERE ip_hash IS NOT NULL;
CREATE INDEX referrals_by_code ON referrals (program_id, code, created_at) WHERE code IS NOT NULL;
CREATE INDEX referrals_by_day ON referrals (program_id, signed_up_at);

-- One reward per referral, member and level. `options` holds the choice
-- offered while `status` is awaiting_choice.
CREATE TABLE referral_rewards (
    program_id   BLOB NOT NULL REFERENCES programs (program_id),
    reward_id    BLOB NOT NULL,
    referral_id  BLOB NOT NULL,
    member_id    BLOB NOT NULL,
    level        INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('choice', 'points', 'cashback', 'coupon_fixed', 'coupon_percent', 'gift_certificate', 'cash_payout')),
    amount       INTEGER NOT NULL,
    options      TEXT NOT NULL DEFAULT '[]',
    status       TEXT NOT NULL CHECK (status IN ('awaiting_choice', 'granted', 'voided', 'clawed_back', 'withheld')),
    reason       TEXT,
    grant_key    TEXT,
    coupon_code  TEXT,
    cost_minor   INTEGER NOT NULL DEFAULT 0,
    order_key    TEXT,
    order_amount INTEGER NOT NULL DEFAULT 0,
    hold_until   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (program_id, reward_id),
    UNIQUE (program_id, referral_id, member_id, level)
) STRICT, WITHOUT ROWID;
CREATE INDEX referral_rewards_by_member ON referral_rewards (program_id, member_id);
CREATE INDEX referral_rewards_by_order ON referral_rewards (program_id, order_key) WHERE order_key IS NOT NULL;
