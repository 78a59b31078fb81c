-- A program's own wording of an automated e-mail, per message name
-- (welcome, reward_earned, …) and language (en, ru, fa). Without a row the
-- built-in template is sent. `subject` is the template of the subject line
-- (NULL keeps the built-in one); `body` is the text, paragraph by paragraph
-- (the HTML part is the same paragraphs in the shared layout).
CREATE TABLE mail_templates (
    program_id UUID NOT NULL REFERENCES programs (program_id),
    name       TEXT NOT NULL,
    locale     TEXT NOT NULL,
    subject    TEXT,
    body       TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (program_id, name, locale)
);
