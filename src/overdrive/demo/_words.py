"""Vocabulary the seed generator draws product names, descriptions and reviews from."""

ADJECTIVES = (
    "compact", "ultra", "quiet", "smart", "classic", "portable", "wireless", "premium", "rugged", "slim",
    "organic", "heavy-duty", "ergonomic", "vintage", "modular", "foldable", "waterproof", "lightweight",
    "professional", "eco", "deluxe", "mini", "turbo", "silent", "digital", "hybrid", "stainless", "bamboo",
    "ceramic", "carbon", "recycled", "cordless", "adjustable", "insulated", "magnetic", "solar",
)
MATERIALS = (
    "steel", "oak", "walnut", "glass", "cotton", "linen", "leather", "aluminium", "copper", "wool",
    "silicone", "granite", "porcelain", "titanium", "canvas", "cork", "marble", "nylon", "maple", "brass",
)
NOUNS = (
    "kettle", "backpack", "headphones", "lamp", "chair", "desk", "blender", "jacket", "sneakers", "watch",
    "speaker", "keyboard", "mouse", "monitor", "tent", "bottle", "mug", "pan", "knife", "cushion", "rug",
    "drill", "bicycle", "helmet", "camera", "tripod", "router", "charger", "notebook", "pen", "wallet",
    "sunglasses", "scarf", "blanket", "toaster", "grinder", "shelf", "mirror", "vase", "planter",
)
CATEGORY_NAMES = (
    "Kitchen", "Audio", "Outdoor", "Office", "Furniture", "Fashion", "Footwear", "Lighting", "Tools", "Garden",
    "Cycling", "Photography", "Networking", "Stationery", "Bedding", "Decor", "Travel", "Fitness", "Toys",
    "Gaming", "Pets", "Baby", "Beauty", "Health", "Books", "Music", "Automotive", "Crafts", "Storage", "Bath",
)
FILLER = (
    "designed", "for", "everyday", "use", "with", "a", "durable", "finish", "and", "easy", "care", "built",
    "to", "last", "perfect", "gift", "home", "travel", "work", "includes", "warranty", "tested", "made",
    "from", "quality", "materials", "fits", "most", "spaces", "simple", "setup", "reliable", "performance",
    "great", "value", "comfortable", "grip", "fast", "delivery", "the", "this", "every", "day", "all",
    "season", "clean", "lines", "modern", "look", "safe", "certified", "low", "noise", "energy", "saving",
)
REVIEW_OPENERS = (
    "Great", "Terrible", "Decent", "Excellent", "Disappointing", "Solid", "Okay", "Amazing", "Poor", "Good",
)
FIRST_NAMES = (
    "Ada", "Alan", "Grace", "Linus", "Guido", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger",
    "Radia", "Tim", "Katherine", "John", "Hedy", "Donald", "Sophie", "Niklaus", "Anita", "Bjarne", "Joan",
)
LAST_NAMES = (
    "Lovelace", "Turing", "Hopper", "Torvalds", "Rossum", "Liskov", "Thompson", "Hamilton", "Ritchie", "Allen",
    "Dijkstra", "Perlman", "Berners", "Johnson", "Backus", "Lamarr", "Knuth", "Wilson", "Wirth", "Borg",
)
COUNTRIES = ("US", "DE", "FR", "GB", "NL", "SE", "PL", "ES", "IT", "JP", "CA", "BR", "IN", "AU", "CH")
