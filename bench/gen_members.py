#!/usr/bin/env python3
"""Writes a members CSV for `sarafan import members` to stdout: N rows
(default 1,000,000), every customer with an external id, e-mail, phone,
name, locale, consent and an opening points balance (0 for every tenth).
Usage: python3 bench/gen_members.py 1000000 > /tmp/m1m.csv"""
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
out = sys.stdout
out.write("external_id,email,phone,name,locale,consent_email,consent_sms,consent_messengers,points\n")
for i in range(1, n + 1):
    out.write(
        f"C{i:07d},c{i}@example.com,+7916{i:07d},Покупатель {i},ru,"
        f"{'true' if i % 2 else 'false'},false,{'true' if i % 3 == 0 else 'false'},{(i * 37) % 1000 if i % 10 else 0}\n"
    )
