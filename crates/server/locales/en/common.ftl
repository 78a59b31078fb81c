# Shared by every page.
lang-switch = Language
lang-en = English
lang-ru = Русский
lang-fa = فارسی
balance-points = { $points ->
    [one] { $points } point
   *[other] { $points } points
}
skip-to-content = Skip to content
page-no-program = There is no such loyalty program here. Check the link you were given.
page-no-program-title = Not found
