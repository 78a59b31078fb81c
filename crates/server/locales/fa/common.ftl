lang-switch = زبان
lang-en = English
lang-ru = Русский
lang-fa = فارسی
balance-points = { $points } امتیاز
skip-to-content = رفتن به محتوا
page-no-program = چنین باشگاه مشتریانی اینجا وجود ندارد. پیوندی را که دریافت کرده‌اید بررسی کنید.
page-no-program-title = پیدا نشد
