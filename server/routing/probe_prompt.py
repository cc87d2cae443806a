"""The prompt probes send: a realistic ~1,500-token support-desk transcript.

A probe should cost what a typical voice turn costs upstream (a prompt of a few thousand
characters, so prefill time is realistic) but produce almost nothing (``PROBE_MAX_OUTPUT_TOKENS``).
The text is assembled deterministically from a fixed script; nothing here is random.

Providers cache long prompt prefixes, which would make a repeated probe look faster than real
traffic. ``probe_prompt(nonce)`` puts a varying ticket line first so no two probes share a
prefix; ``PROBE_PROMPT`` is the variant for nonce 0.
"""

from __future__ import annotations

PROBE_MAX_OUTPUT_TOKENS = 1

_INSTRUCTION = (
    "You are a quality reviewer for a telephone support desk. Read the call transcript below "
    "and reply with one word: 'resolved' if the customer's problem was fixed during the call, "
    "otherwise 'open'."
)

# (speaker, line); {name}, {plan} and {ticket} are filled in below.
_SCRIPT: tuple[tuple[str, str], ...] = (
    ("Agent", "Thank you for calling Northwind Broadband support, this is Priya. How can I help?"),
    (
        "Customer",
        "Hi Priya, my name is {name}. My internet keeps dropping out, mostly in the "
        "evenings, and it has been going on for about a week now.",
    ),
    (
        "Agent",
        "I'm sorry to hear that. I can look into it. Could you confirm the account holder's "
        "name and the first line of the service address?",
    ),
    ("Customer", "It's under my name, {name}, and the address is 14 Harbour View Road."),
    (
        "Agent",
        "Thank you. I can see the account. You're on the {plan} plan with a fibre router "
        "that we sent out in March. When the connection drops, do the lights on the router change?",
    ),
    (
        "Customer",
        "I think the light on the front goes from white to orange for a minute or two, "
        "and then it comes back by itself. Sometimes it happens three or four times in an hour.",
    ),
    (
        "Agent",
        "That's helpful. An orange light usually means the router has lost its link to our "
        "network. Is everything affected, or only some devices, like the laptop or the television?",
    ),
    (
        "Customer",
        "Everything. My son's game disconnects, my video calls freeze, and the smart "
        "speaker in the kitchen says it can't reach the internet.",
    ),
    (
        "Agent",
        "Understood. I'm going to run a line test from our side. It takes about a minute and "
        "it won't interrupt your service. While it runs, is the router near any other electronics?",
    ),
    (
        "Customer",
        "It's on a shelf in the hallway, next to the cordless phone base and a power "
        "strip. It has been there since the engineer installed it.",
    ),
    (
        "Agent",
        "That placement is usually fine. The line test has finished. It shows the optical "
        "signal dipping below the normal level at around seven and nine o'clock yesterday evening.",
    ),
    (
        "Customer",
        "That matches. Those are exactly the times we noticed problems. So it's not "
        "something in my house?",
    ),
    (
        "Agent",
        "It may not be. A weak signal can come from a loose fibre connector, a bent cable "
        "behind the router, or a fault in the street cabinet. Could you check the thin green cable "
        "going into the small white box on the wall?",
    ),
    (
        "Customer",
        "Give me a second. Okay, I'm looking at it now. The green plug is in, but the "
        "cable is bent quite sharply where it goes behind the shelf.",
    ),
    (
        "Agent",
        "That could be the cause. Fibre doesn't like tight bends. Without pulling on it, "
        "could you move the shelf slightly so the cable follows a gentle curve?",
    ),
    (
        "Customer",
        "Done. I've moved the shelf out a few centimetres. The cable looks much "
        "straighter now. The router light is still white.",
    ),
    (
        "Agent",
        "Great. I'll run the line test once more. The signal level is now well inside the "
        "normal range and steadier than before. That's a good sign.",
    ),
    ("Customer", "That's a relief. Will I know if it happens again, or do I have to call back?"),
    (
        "Agent",
        "I've opened ticket {ticket} and set monitoring on your line for the next seven "
        "days. If the signal dips again, we'll text you and book an engineer visit automatically.",
    ),
    ("Customer", "Okay. And if an engineer does need to come out, is there a charge for that?"),
    (
        "Agent",
        "No, a visit for a fault on our equipment or the fibre is included in the {plan} "
        "plan. You'd only be charged if the damage was caused deliberately, which isn't the case.",
    ),
    (
        "Customer",
        "Good to know. Can I also ask about the speed? We pay for the faster tier, but a "
        "speed test on my phone this morning showed less than half of that.",
    ),
    (
        "Agent",
        "Phone tests over Wi-Fi often read lower than the line speed, especially through "
        "walls. Our test to the router shows the full speed. For a fair reading, use a laptop "
        "connected with a network cable, or stand in the same room as the router.",
    ),
    (
        "Customer",
        "That makes sense. The phone was upstairs at the time, at the far end of the "
        "house. I'll try it with the laptop later.",
    ),
    (
        "Agent",
        "If the upstairs rooms are a problem, we have a mesh extender that comes free with "
        "your plan. I can post one out today and it should arrive within two working days.",
    ),
    ("Customer", "Yes please, that would help with the bedrooms. Does it need any setting up?"),
    (
        "Agent",
        "Very little. Plug it in halfway between the router and the bedrooms, press the "
        "button on the router and then on the extender within two minutes, and they pair.",
    ),
    (
        "Customer",
        "Sounds simple enough. Is there anything else I should do about the drop-outs tonight?",
    ),
    (
        "Agent",
        "Just leave the cable where it is now and avoid moving the shelf back. If you see "
        "the orange light again, note the time; it helps the engineer if a visit is needed.",
    ),
    (
        "Customer",
        "One more thing while I have you. My last bill was higher than usual. Was "
        "there a price change I missed?",
    ),
    (
        "Agent",
        "Let me check. Your bill for last month includes a one-off charge for a call to an "
        "international number on the landline, on the twelfth, for just over forty minutes.",
    ),
    (
        "Customer",
        "Oh, that was my mother calling her sister in Lagos. I didn't realise it wasn't included.",
    ),
    (
        "Agent",
        "International calls aren't part of the {plan} bundle, but we have an add-on that "
        "includes two hundred international minutes a month. For the calls you make, it would "
        "cost less than that single call did.",
    ),
    (
        "Customer",
        "Could you add that, starting from this month? And can you email me the "
        "details so I can show my mother?",
    ),
    (
        "Agent",
        "Of course. The add-on is active from today and I've sent a summary to the email "
        "address on the account. You'll also see it on your next bill as a separate line.",
    ),
    (
        "Customer",
        "Perfect. And the email address you have is still the one ending in example dot com?",
    ),
    (
        "Agent",
        "Yes, that's the one. I've also added a note to ticket {ticket} so anyone you "
        "speak to next can see what we changed today.",
    ),
    ("Customer", "Will do. Thank you, Priya, you've been really helpful."),
    (
        "Agent",
        "You're welcome, {name}. To recap: we straightened the fibre cable, your signal "
        "is back to normal, ticket {ticket} is monitoring the line for a week, and a mesh extender "
        "is on its way. Is there anything else I can help with today?",
    ),
    ("Customer", "No, that's everything. Have a good evening."),
    ("Agent", "You too. Thank you for calling Northwind Broadband."),
)


def probe_prompt(nonce: int = 0, max_tokens: int = 0) -> str:
    """The probe prompt; a different ``nonce`` changes its first line (defeats prefix caches).
    ``max_tokens`` (0: no limit) keeps the estimate (4 characters a token) within it by
    ending the transcript early, for endpoints with a small context window."""
    ticket = f"NW-{nonce % 1_000_000:06d}"
    fields = {"name": "Daniel Okafor", "plan": "Fibre 500", "ticket": ticket}
    head = [f"Call reference {ticket}.", _INSTRUCTION, "", "Transcript:"]
    tail = ["", "Answer (one word):"]
    budget = 4 * max_tokens if max_tokens else None
    lines = list(head)
    used = len("\n".join(head + tail))
    for who, text in _SCRIPT:
        line = f"{who}: {text.format(**fields)}"
        if budget is not None and used + len(line) + 1 > budget:
            break
        lines.append(line)
        used += len(line) + 1
    if budget is not None and used > budget:  # the head alone is too long: its ticket only
        return f"Call reference {ticket}. Reply with one word: ok."
    return "\n".join(lines + tail)


PROBE_PROMPT = probe_prompt(0)
# About four characters per token for English prose.
PROBE_PROMPT_TOKENS = len(PROBE_PROMPT) // 4
