"""What a chat says when its appeal is decided: the outcome, in the language the person chats in.

The decision itself (with its statement of reasons and the ways to contest it further) reaches
the person through notifications, on the channel the platform has on file, like every decision;
the chat says in a sentence what happened to the account, so someone still on the page learns
it at once. The chats' languages are ISO 639-1 codes: these are the languages notifications
writes decisions in (an English text for any other).
"""

from __future__ import annotations

FALLBACK = "en"

TEXTS: dict[str, dict[str, str]] = {
    "overturned": {
        "en": "Decision on your appeal: we reversed our decision, and access to your account is "
        "restored. The decision and its reasons are on their way to you as well.",
        "de": "Entscheidung über Ihren Einspruch: Wir haben unsere Entscheidung aufgehoben, und "
        "Ihr Zugang zu Ihrem Konto ist wiederhergestellt. Die Entscheidung und ihre Begründung "
        "senden wir Ihnen außerdem zu.",
        "fr": "Décision sur votre recours : nous avons annulé notre décision et l'accès à votre "
        "compte est rétabli. Nous vous envoyons aussi la décision et ses motifs.",
        "es": "Decisión sobre tu apelación: hemos revocado nuestra decisión y se ha restablecido "
        "el acceso a tu cuenta. También te enviamos la decisión y sus motivos.",
        "pt": "Decisão sobre o seu recurso: revertemos a nossa decisão e o acesso à sua conta foi "
        "restabelecido. Também enviamos a você a decisão e os seus motivos.",
        "ar": "القرار بشأن طعنك: ألغينا قرارنا وتمت استعادة الوصول إلى حسابك. "
        "سنرسل إليك أيضًا القرار وأسبابه.",
        "hi": "आपकी अपील पर निर्णय: हमने अपना निर्णय वापस ले लिया है और आपके खाते की पहुँच बहाल कर "
        "दी गई है। निर्णय और उसके कारण हम आपको अलग से भी भेज रहे हैं।",
        "id": "Keputusan atas banding Anda: kami membatalkan keputusan kami dan akses ke akun Anda "
        "telah dipulihkan. Kami juga mengirimkan keputusan beserta alasannya kepada Anda.",
    },
    "upheld": {
        "en": "Decision on your appeal: our decision stands, and your account stays as it is. "
        "The decision, its reasons and how you can contest it further are on their way to you.",
        "de": "Entscheidung über Ihren Einspruch: Unsere Entscheidung bleibt bestehen, und Ihr "
        "Konto bleibt, wie es ist. Die Entscheidung, ihre Begründung und wie Sie sie weiter "
        "anfechten können, senden wir Ihnen zu.",
        "fr": "Décision sur votre recours : notre décision est maintenue et votre compte reste en "
        "l'état. Nous vous envoyons la décision, ses motifs et vos autres voies de recours.",
        "es": "Decisión sobre tu apelación: nuestra decisión se mantiene y tu cuenta sigue como "
        "está. Te enviamos la decisión, sus motivos y cómo puedes seguir impugnándola.",
        "pt": "Decisão sobre o seu recurso: a nossa decisão foi mantida e a sua conta continua "
        "como está. Enviamos a você a decisão, os seus motivos e como contestá-la.",
        "ar": "القرار بشأن طعنك: قرارنا لا يزال قائمًا ويبقى حسابك على حاله. "
        "سنرسل إليك القرار وأسبابه وطرق الطعن الأخرى.",
        "hi": "आपकी अपील पर निर्णय: हमारा निर्णय कायम है और आपका खाता जैसा है वैसा ही रहेगा। "
        "निर्णय, उसके कारण और आगे चुनौती देने के तरीके हम आपको भेज रहे हैं।",
        "id": "Keputusan atas banding Anda: keputusan kami tetap berlaku dan akun Anda tetap "
        "seperti sekarang. Kami mengirimkan keputusan, alasannya, dan cara mengajukan keberatan.",
    },
    "partially_overturned": {
        "en": "Decision on your appeal: we reversed part of our decision; the rest of it stands. "
        "The decision and its reasons are on their way to you as well.",
        "de": "Entscheidung über Ihren Einspruch: Wir haben unsere Entscheidung teilweise "
        "aufgehoben; der Rest bleibt bestehen. Die Entscheidung und ihre Begründung senden wir "
        "Ihnen außerdem zu.",
        "fr": "Décision sur votre recours : nous avons annulé une partie de notre décision ; le "
        "reste est maintenu. Nous vous envoyons aussi la décision et ses motifs.",
        "es": "Decisión sobre tu apelación: hemos revocado parte de nuestra decisión; el resto se "
        "mantiene. También te enviamos la decisión y sus motivos.",
        "pt": "Decisão sobre o seu recurso: revertemos parte da nossa decisão; o restante foi "
        "mantido. Também enviamos a você a decisão e os seus motivos.",
        "ar": "القرار بشأن طعنك: ألغينا جزءًا من قرارنا ويبقى الباقي قائمًا. "
        "سنرسل إليك أيضًا القرار وأسبابه.",
        "hi": "आपकी अपील पर निर्णय: हमने अपने निर्णय का एक हिस्सा वापस ले लिया है; बाकी कायम है। "
        "निर्णय और उसके कारण हम आपको अलग से भी भेज रहे हैं।",
        "id": "Keputusan atas banding Anda: kami membatalkan sebagian keputusan kami; sisanya "
        "tetap berlaku. Kami juga mengirimkan keputusan beserta alasannya kepada Anda.",
    },
}


def decision_text(outcome: str, language: str) -> str:
    """The sentence for ``outcome`` (a name of ``appeals.vocabulary.OUTCOMES``; each has one,
    tests/unit/test_help_decision_texts.py checks) in ``language``."""
    texts = TEXTS[outcome]
    return texts.get(language, texts[FALLBACK])
