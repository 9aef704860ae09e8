"""The practice guide's plan: tiers, the recommended order, and which bug to practise next.

The guide sorts its first twenty bugs into three tiers (essential, important, advanced; 18 and 19
are aliases of 54 and 34) and recommends an order over three weeks. Bugs the guide does not tier
take their priority as tier. After the recommended order come the remaining bugs by tier,
difficulty and id.
"""

GUIDE_TIERS = {1: [1, 2, 3, 4, 5, 6, 7, 8], 2: [9, 10, 11, 12, 13, 14, 15], 3: [16, 17, 54, 34, 20]}
RECOMMENDED_ORDER = [1, 3, 7, 2, 8, 13, 14, 4, 6, 11, 10, 9, 15, 16]
DIFFICULTY_RANK = {"easy": 0, "medium": 1, "hard": 2}
DONE = ("found", "fixed")


def tier(record):
    for number, ids in GUIDE_TIERS.items():
        if record.id in ids:
            return number
    return record.priority


def practice_order(catalog):
    """Every bug id of the catalogue, in the order the guide would practise them."""
    rest = sorted((r for r in catalog.values() if r.id not in RECOMMENDED_ORDER),
                  key=lambda r: (tier(r), DIFFICULTY_RANK[r.difficulty], r.id))
    return [i for i in RECOMMENDED_ORDER if i in catalog] + [r.id for r in rest]


def next_bug(catalog, progress):
    """(bug id, why) of the first bug in practice order not yet found or fixed; None when all are."""
    for position, bug_id in enumerate(practice_order(catalog), 1):
        status = progress.get(bug_id, {}).get("status", "not_started")
        if status not in DONE:
            why = ("recommended practice order" if bug_id in RECOMMENDED_ORDER else f"tier {tier(catalog[bug_id])}")
            return bug_id, f"#{position} in practice order ({why}); status: {status.replace('_', ' ')}"
    return None
