// The catalog's rows as the dashboard reads them (public.service_groups, service_group_agents, busybro_agents,
// tags; see supabase/migrations/20261203100800_create_catalog.sql).
export interface ServiceGroup {
  id: string;
  name: string;
  icon: string | null;
  domains: string[];
  created_at: string;
}

export interface Agent {
  id: string;
  name: string;
  emoji: string;
  instructions: string;
  created_at: string;
}

export interface AgentLink {
  service_group_id: string;
  agent_id: string;
  is_primary: boolean;
  position: number;
}

export interface Tag {
  id: string;
  name: string;
  color: string;
  match_patterns: string[];
  created_at: string;
}

/** A group's agents in their stored order: the primary first, then by position. */
export function groupAgentIds(links: AgentLink[] | null, groupId: string): string[] {
  return (links ?? [])
    .filter((l) => l.service_group_id === groupId)
    .sort((a, b) => Number(b.is_primary) - Number(a.is_primary) || a.position - b.position)
    .map((l) => l.agent_id);
}

/** Moves items[index] one place up (-1) or down (+1); the same array when it cannot move. */
export function move<T>(items: T[], index: number, by: -1 | 1): T[] {
  const to = index + by;
  if (to < 0 || to >= items.length) return items;
  const next = items.slice();
  [next[index], next[to]] = [next[to], next[index]];
  return next;
}
