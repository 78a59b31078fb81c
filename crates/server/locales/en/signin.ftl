signin-title = Sign in
signin-intro = Enter the e-mail address you gave the store. We will send you a one-time code and a sign-in link.
signin-email-label = E-mail address
signin-send = Send me a code
signin-code-sent = If this address belongs to a member, a code is on its way. It works for { $minutes } minutes.
signin-code-label = One-time code
signin-code-help = Six digits from the e-mail. You can also just open the link in it.
signin-verify = Sign in
signin-again = Send a new code
signin-bad-email = This does not look like an e-mail address. Check it and try again.
signin-wrong-code = { $left ->
    [one] That code is not right. One more try, then ask for a new code.
   *[other] That code is not right. { $left } more tries.
}
signin-locked = Too many wrong codes. Please wait { $minutes } minutes and ask for a new code.
signin-expired-title = This sign-in link or code has expired
signin-expired = Codes and links work once, for { $minutes } minutes. Ask for a new one.
signin-signed-out = You are signed out.
signin-out = Sign out
signin-too-many-codes = Too many codes were asked for from this connection. Please wait { $minutes } minutes.
signin-link-confirm = Press the button to sign in.
