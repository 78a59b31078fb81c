-- Each batch looks up the debts of the members it touches; only a few
-- members ever owe points, so a partial index finds them without scanning
-- every balance of the program.
CREATE INDEX balances_in_debt ON balances (program_id, member_id) WHERE debt <> 0;
