package erasure

import "sort"

// Exemptions are the legal bases on which a system may keep data despite an
// erasure request, by jurisdiction: GDPR Art. 17(3) (a)–(e) and CCPA
// § 1798.105(d).
var Exemptions = map[Jurisdiction]map[string]string{
	GDPR: {
		"art17-3-a": "Art. 17(3)(a): exercising the right of freedom of expression and information",
		"art17-3-b": "Art. 17(3)(b): compliance with a legal obligation, or a task in the public interest or in official authority",
		"art17-3-c": "Art. 17(3)(c): reasons of public interest in the area of public health",
		"art17-3-d": "Art. 17(3)(d): archiving in the public interest, scientific or historical research, or statistics",
		"art17-3-e": "Art. 17(3)(e): the establishment, exercise or defence of legal claims",
	},
	CCPA: {
		"1798.105-d-1": "§ 1798.105(d)(1): completing the transaction or contract with the consumer",
		"1798.105-d-2": "§ 1798.105(d)(2): security and integrity",
		"1798.105-d-3": "§ 1798.105(d)(3): debugging to repair errors",
		"1798.105-d-4": "§ 1798.105(d)(4): exercising free speech or another legal right",
		"1798.105-d-5": "§ 1798.105(d)(5): the California Electronic Communications Privacy Act",
		"1798.105-d-6": "§ 1798.105(d)(6): research in the public interest",
		"1798.105-d-7": "§ 1798.105(d)(7): internal uses the consumer would expect",
		"1798.105-d-8": "§ 1798.105(d)(8): compliance with a legal obligation",
	},
}

// ExemptionBasis returns the description of an exemption code, and whether
// it applies to the jurisdiction.
func (j Jurisdiction) ExemptionBasis(code string) (string, bool) {
	d, ok := Exemptions[j][code]
	return d, ok
}

// ExemptionCodes lists a jurisdiction's exemption codes, sorted.
func (j Jurisdiction) ExemptionCodes() []string {
	var out []string
	for c := range Exemptions[j] {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}
