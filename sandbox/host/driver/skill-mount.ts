/** A skill's approved files as one read-only volume, mounted at /skills/<name> in the sandbox. */
export interface SkillMount {
  name: string;
  volume: string;
}
