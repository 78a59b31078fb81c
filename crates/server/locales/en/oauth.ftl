oauth-title = Link { $assistant }
oauth-ask = { $assistant } asks to use your { $program } account: to tell you your balance and your friends' progress, and to send you your referral link when you ask.
oauth-as = Signed in as { $name }.
oauth-allow = Allow
oauth-deny = Do not allow
oauth-refused-title = This link request cannot be used
oauth-unknown-client = The assistant that sent you here is not set up for this store. Start the linking again from the assistant's app.
oauth-bad-redirect = The assistant asked to return to an address the store has not registered, so we stopped here.
