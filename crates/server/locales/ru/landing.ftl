landing-invited = { $referrer } приглашает вас в { $program }
landing-invited-anonymous = Друг приглашает вас в { $program }
landing-og-description = Вступайте в { $program } по приглашению и получите { $reward }.
landing-og-plain = Вступайте в { $program } по приглашению и получайте баллы за каждую покупку.
landing-qr-alt = QR-код ссылки-приглашения
landing-you-get = Что вы получите
landing-no-reward = Баллы за каждую покупку и собственную ссылку, чтобы приглашать друзей.
landing-tier = при заказе от { $min }: { $reward }
landing-how = Как это работает
landing-qualify-first = Награда начисляется за первую покупку после вступления.
landing-qualify-at-least = Награда начисляется за покупку от { $amount }.
landing-qualify-within = Награда начисляется, когда вы сделаете { $count } покупки за { $days } дней.
landing-qualify-custom = Награда начисляется, когда вы выполните условие: { $name }.
landing-window = Вступите и сделайте покупку в течение { $days } дней после перехода по ссылке, чтобы приглашение засчиталось.
landing-hold = Награды подтверждаются через { $days } дней после покупки, когда её уже нельзя вернуть.
landing-code = Ваш код приглашения:
landing-terms = Условия программы
landing-join = Вступить в { $program }
landing-name = Ваше имя
landing-email = Электронная почта
landing-phone = Телефон
landing-contact-help = Укажите электронную почту: на неё придёт код для входа. Телефон — по желанию.
landing-consent = Я принимаю условия программы и согласен получать сообщения о баллах и наградах.
landing-submit = Вступить
landing-member = Уже участник? Войти
landing-err-consent = Отметьте согласие с условиями: без него мы не можем вас зарегистрировать.
landing-err-email = Адрес электронной почты указан неверно. Проверьте и попробуйте ещё раз.
landing-err-phone = Телефон указан неверно. Используйте международный формат, например +79161234567.
landing-err-name = Имя слишком длинное.
landing-err-contact = Укажите электронную почту: на неё придёт код для входа.
landing-err-taken = Эта почта или телефон уже зарегистрированы с другими данными. Войдите вместо регистрации.
landing-welcome-title = Добро пожаловать в { $program }!
landing-welcome = Вы участник, и приглашение друга засчитано. Войдите, чтобы увидеть баллы и свою ссылку для приглашения друзей.
landing-already = Вы уже участник. Войдите, чтобы увидеть баллы и свою ссылку.
landing-unknown-title = Приглашение недействительно
landing-unknown = Эта ссылка-приглашение больше не действует, но мы всё равно вам рады: попросите друга прислать новую ссылку или спросите в магазине.
reward-points = { $amount ->
    [one] { $amount } балл
    [few] { $amount } балла
   *[many] { $amount } баллов
}
reward-cashback = { $amount } на бонусный счёт
reward-coupon-fixed = купон на скидку { $amount }
reward-coupon-percent = купон на скидку { $percent }%
reward-gift-certificate = подарочный сертификат на { $amount }
reward-cash-payout = выплату { $amount }
landing-welcome-open = Теперь вы участник. Войдите, чтобы видеть свои баллы и свою ссылку для приглашения друзей.
