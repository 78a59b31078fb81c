lang-switch = Язык
lang-en = English
lang-ru = Русский
lang-fa = فارسی
balance-points = { $points ->
    [one] { $points } балл
    [few] { $points } балла
   *[many] { $points } баллов
}
skip-to-content = К содержанию
page-no-program = Такой программы лояльности здесь нет. Проверьте ссылку, которую вам дали.
page-no-program-title = Не найдено
