// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

/// @title EnterpriseRegistry
/// @notice Permissioned membership registry of the traceability ledger.
/// Governance (admin) accounts register enterprises, give them role flags and an
/// identifier prefix of the form `88.<industry>.<enterprise>`, activate or
/// deactivate them, and bind dedicated anchoring accounts to them. The
/// enterprise account itself always counts as one of its anchoring accounts.
///
/// Governance by quorum: admin changes, role grants, (de)activations and the quorum itself go
/// through proposals (`propose` -> `approveProposal` by other admins -> `executeProposal` once
/// `threshold` current admins approved and `governanceDelay` seconds passed). The direct
/// functions (`addAdmin`, `removeAdmin`, `setRoles`, `setActive`) work only in bootstrap mode
/// (`threshold == 1 && governanceDelay == 0`, a one-admin network) and revert `QuorumRequired`
/// otherwise. Every admin is a permitted sender, so a new admin key works at once (key rotation).
///
/// Persons: an enterprise registers a person only with the person's EIP-712 signature over the
/// registration (proof of possession of the key; domain name "TraceLedger EnterpriseRegistry",
/// version "1"; type `PersonRegistration(address enterprise,address person,uint32 roles,
/// string qualification,uint256 deadline)`), so no address can be claimed by someone else. A person an
/// admin deactivated cannot be re-activated by its enterprise; a retired person stays inactive for good.
contract EnterpriseRegistry {
    // ------------------------------------------------------------------ roles
    uint32 public constant MANUFACTURER = 1;
    uint32 public constant SUPPLIER = 2;
    uint32 public constant CORE_ENTERPRISE = 4;
    uint32 public constant BANK = 8;
    uint32 public constant AUDITOR = 16;
    uint32 public constant REGULATOR = 32;
    uint32 public constant WAREHOUSE = 64;
    uint32 public constant PRICE_PUBLISHER = 128;
    /// @notice Union of every defined role flag.
    uint32 public constant ALL_ROLES = 255;

    // ------------------------------------------------- person roles (GB 26860)
    /// @notice Work ticket issuer (签发人).
    uint32 public constant TICKET_ISSUER = 1;
    /// @notice Permitting officer (许可人).
    uint32 public constant PERMITTING_OFFICER = 2;
    /// @notice Person in charge of the work (工作负责人).
    uint32 public constant PERSON_IN_CHARGE = 4;
    /// @notice Work crew member (工作班成员).
    uint32 public constant CREW_MEMBER = 8;
    /// @notice Union of every person role flag.
    uint32 public constant ALL_PERSON_ROLES = 15;

    /// @notice Maximum length of a prefix in bytes.
    uint256 public constant MAX_PREFIX_LENGTH = 64;
    /// @notice Longest governance delay that can be configured (30 days).
    uint64 public constant MAX_GOVERNANCE_DELAY = 30 days;

    bytes32 public constant PERSON_REGISTRATION_TYPEHASH = keccak256(
        "PersonRegistration(address enterprise,address person,uint32 roles,string qualification,uint256 deadline)"
    );
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// secp256k1n / 2 (EIP-2 low-s)
    uint256 private constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// Governance operations (proposal kinds).
    enum Op {
        AddAdmin,
        RemoveAdmin,
        SetRoles,
        SetActive,
        SetThreshold
    }

    struct Proposal {
        Op op;
        address target;
        /// SetRoles: roles; SetActive: 1/0; SetThreshold: threshold | delaySeconds << 128
        uint256 value;
        address proposer;
        uint64 proposedAt;
        bool executed;
    }

    // ------------------------------------------------------------------ types
    struct Enterprise {
        string name;
        string prefix;
        uint32 roles;
        bool active;
        bool exists;
    }

    /// A named person (employee) acting under an enterprise, with GB 26860 role flags and a
    /// free-text qualification (e.g. "issue tickets: 110 kV Xinzhuang substation").
    struct Person {
        address enterprise;
        uint32 roles;
        bool active;
        string qualification;
        /// deactivated by an admin: only an admin may re-activate
        bool adminLocked;
        /// retired for good: never active again
        bool retired;
    }

    // ------------------------------------------------------------------ state
    mapping(address => bool) public isAdmin;
    uint256 public adminCount;
    /// @notice Approvals of current admins a proposal needs (m of n).
    uint256 public threshold = 1;
    /// @notice Seconds between a proposal and its execution.
    uint64 public governanceDelay;
    uint256 public proposalCount;
    mapping(uint256 => Proposal) private _proposals;
    mapping(uint256 => address[]) private _approvers;
    mapping(uint256 => mapping(address => bool)) private _approved;

    mapping(address => Enterprise) private _enterprises;
    address[] private _enterpriseList;
    /// keccak256(ASCII-lowercased prefix) => enterprise account (Handle prefixes are case-insensitive,
    /// so "88.ab.1" and "88.AB.1" are one prefix: no look-alike registrations)
    mapping(bytes32 => address) private _prefixOwner;

    /// dedicated anchoring account => enterprise it anchors for
    mapping(address => address) private _anchorerEnterprise;
    /// enterprise => its dedicated anchoring accounts (the enterprise itself excluded)
    mapping(address => address[]) private _anchorers;
    /// dedicated anchoring account => 1-based index in _anchorers[enterprise]
    mapping(address => uint256) private _anchorerIndex;

    /// person account => Person (enterprise == address(0) when unknown)
    mapping(address => Person) private _persons;
    /// enterprise => its person accounts
    mapping(address => address[]) private _personsOf;

    // ----------------------------------------------------------------- events
    event PersonRegistered(address indexed enterprise, address indexed person, uint32 roles, string qualification);
    event PersonUpdated(address indexed person, uint32 roles, bool active, string qualification);
    event AdminAdded(address indexed admin, address indexed by);
    event AdminRemoved(address indexed admin, address indexed by);
    event EnterpriseRegistered(address indexed account, string name, uint32 roles, string prefix);
    event EnterpriseUpdated(address indexed account, uint32 roles, bool active);
    event AnchoringAccountAdded(address indexed enterprise, address indexed anchorer);
    event AnchoringAccountRemoved(address indexed enterprise, address indexed anchorer);
    event PersonRetired(address indexed person, address indexed by);
    event Proposed(uint256 indexed id, Op op, address indexed target, uint256 value, address indexed proposer);
    event ProposalApproved(uint256 indexed id, address indexed admin);
    event ProposalExecuted(uint256 indexed id, address indexed by);
    event QuorumChanged(uint256 threshold, uint64 delaySeconds);

    // ----------------------------------------------------------------- errors
    error NotAdmin(address caller);
    error NoAdmins();
    error ZeroAddress();
    error AlreadyAdmin(address account);
    error UnknownAdmin(address account);
    error LastAdmin(address account);
    error EmptyName();
    error InvalidRoles(uint32 roles);
    error InvalidPrefix(string prefix);
    error PrefixTaken(string prefix, address owner);
    error EnterpriseExists(address account);
    error UnknownEnterprise(address account);
    error AccountIsAnchorer(address account, address enterprise);
    error AnchorerIsEnterprise(address anchorer);
    error AnchorerAlreadyAssigned(address anchorer, address enterprise);
    error NotAnchoringAccount(address enterprise, address anchorer);
    error IndexOutOfRange(uint256 index, uint256 count);
    error NotAdminOrEnterprise(address caller, address enterprise);
    error InvalidPersonRoles(uint32 roles);
    error PersonExists(address person);
    error UnknownPerson(address person);
    error AccountIsPerson(address account);
    error QuorumRequired(uint256 threshold, uint64 delaySeconds);
    error UnknownProposal(uint256 id);
    error AlreadyApproved(uint256 id, address admin);
    error AlreadyExecuted(uint256 id);
    error QuorumNotReached(uint256 id, uint256 approvals, uint256 threshold);
    error DelayNotElapsed(uint256 id, uint256 executableAt);
    error InvalidThreshold(uint256 threshold, uint256 adminCount);
    error InvalidDelay(uint256 delaySeconds);
    error InactiveEnterprise(address enterprise);
    error DeactivatedByAdmin(address person);
    error PersonIsRetired(address person);
    error SignatureExpired(uint256 deadline);
    error InvalidSignature();
    error WrongSigner(address expected, address recovered);

    // -------------------------------------------------------------- modifiers
    modifier onlyAdmin() {
        if (!isAdmin[msg.sender]) revert NotAdmin(msg.sender);
        _;
    }

    modifier knownEnterprise(address account) {
        if (!_enterprises[account].exists) revert UnknownEnterprise(account);
        _;
    }

    // ------------------------------------------------------------ constructor
    constructor(address[] memory admins) {
        if (admins.length == 0) revert NoAdmins();
        for (uint256 i = 0; i < admins.length; ++i) {
            _addAdmin(admins[i]);
        }
    }

    modifier bootstrapOnly() {
        if (threshold != 1 || governanceDelay != 0) revert QuorumRequired(threshold, governanceDelay);
        _;
    }

    // ------------------------------------------------------------- governance
    /// @notice Add an admin directly (bootstrap mode only; else propose `Op.AddAdmin`).
    function addAdmin(address account) external onlyAdmin bootstrapOnly {
        _addAdmin(account);
    }

    /// @notice Remove an admin directly (bootstrap mode only; else propose `Op.RemoveAdmin`).
    function removeAdmin(address account) external onlyAdmin bootstrapOnly {
        _removeAdmin(account);
    }

    /// @notice Propose a governance operation; the proposer's approval counts. Returns the id (1, 2, …).
    function propose(Op op, address target, uint256 value) external onlyAdmin returns (uint256 id) {
        id = ++proposalCount;
        _proposals[id] =
            Proposal({op: op, target: target, value: value, proposer: msg.sender, proposedAt: uint64(block.timestamp),
                executed: false});
        emit Proposed(id, op, target, value, msg.sender);
        _approve(id);
    }

    /// @notice Approve proposal `id` (once per admin).
    function approveProposal(uint256 id) external onlyAdmin {
        Proposal storage p = _proposals[id];
        if (p.proposer == address(0)) revert UnknownProposal(id);
        if (p.executed) revert AlreadyExecuted(id);
        if (_approved[id][msg.sender]) revert AlreadyApproved(id, msg.sender);
        _approve(id);
    }

    /// @notice Execute proposal `id` once `threshold` current admins approved it and the delay passed.
    function executeProposal(uint256 id) external onlyAdmin {
        Proposal storage p = _proposals[id];
        if (p.proposer == address(0)) revert UnknownProposal(id);
        if (p.executed) revert AlreadyExecuted(id);
        uint256 n = approvalsOf(id);
        if (n < threshold) revert QuorumNotReached(id, n, threshold);
        uint256 readyAt = uint256(p.proposedAt) + governanceDelay;
        if (block.timestamp < readyAt) revert DelayNotElapsed(id, readyAt);
        p.executed = true;
        if (p.op == Op.AddAdmin) {
            _addAdmin(p.target);
        } else if (p.op == Op.RemoveAdmin) {
            _removeAdmin(p.target);
        } else if (p.op == Op.SetRoles) {
            _setRoles(p.target, uint32(p.value));
        } else if (p.op == Op.SetActive) {
            _setActive(p.target, p.value != 0);
        } else {
            _setQuorum(uint128(p.value), p.value >> 128);
        }
        emit ProposalExecuted(id, msg.sender);
    }

    /// @notice Approvals of proposal `id` by accounts that are admins now.
    function approvalsOf(uint256 id) public view returns (uint256 n) {
        address[] storage list = _approvers[id];
        for (uint256 i = 0; i < list.length; ++i) {
            if (isAdmin[list[i]]) ++n;
        }
    }

    function getProposal(uint256 id) external view returns (Proposal memory) {
        if (_proposals[id].proposer == address(0)) revert UnknownProposal(id);
        return _proposals[id];
    }

    // ------------------------------------------------------------ enterprises
    function registerEnterprise(address account, string calldata name, uint32 roles, string calldata prefix)
        external
        onlyAdmin
    {
        if (account == address(0)) revert ZeroAddress();
        if (_enterprises[account].exists) revert EnterpriseExists(account);
        address owningEnterprise = _anchorerEnterprise[account];
        if (owningEnterprise != address(0)) revert AccountIsAnchorer(account, owningEnterprise);
        if (_persons[account].enterprise != address(0)) revert AccountIsPerson(account);
        if (bytes(name).length == 0) revert EmptyName();
        _checkRoles(roles);
        if (!_validPrefix(bytes(prefix))) revert InvalidPrefix(prefix);
        bytes32 key = _prefixKey(bytes(prefix));
        address owner = _prefixOwner[key];
        if (owner != address(0)) revert PrefixTaken(prefix, owner);

        _prefixOwner[key] = account;
        _enterprises[account] = Enterprise({name: name, prefix: prefix, roles: roles, active: true, exists: true});
        _enterpriseList.push(account);
        emit EnterpriseRegistered(account, name, roles, prefix);
    }

    /// @notice (De)activate an enterprise directly (bootstrap mode only; else propose `Op.SetActive`).
    function setActive(address account, bool active) external onlyAdmin bootstrapOnly {
        _setActive(account, active);
    }

    /// @notice Set an enterprise's roles directly (bootstrap mode only; else propose `Op.SetRoles`).
    function setRoles(address account, uint32 roles) external onlyAdmin bootstrapOnly {
        _setRoles(account, roles);
    }

    // ------------------------------------------------------ anchoring accounts
    function addAnchoringAccount(address enterprise, address anchorer)
        external
        onlyAdmin
        knownEnterprise(enterprise)
    {
        if (anchorer == address(0)) revert ZeroAddress();
        if (_enterprises[anchorer].exists) revert AnchorerIsEnterprise(anchorer);
        if (_persons[anchorer].enterprise != address(0)) revert AccountIsPerson(anchorer);
        address current = _anchorerEnterprise[anchorer];
        if (current != address(0)) revert AnchorerAlreadyAssigned(anchorer, current);

        _anchorerEnterprise[anchorer] = enterprise;
        _anchorers[enterprise].push(anchorer);
        _anchorerIndex[anchorer] = _anchorers[enterprise].length;
        emit AnchoringAccountAdded(enterprise, anchorer);
    }

    function removeAnchoringAccount(address enterprise, address anchorer)
        external
        onlyAdmin
        knownEnterprise(enterprise)
    {
        if (_anchorerEnterprise[anchorer] != enterprise) revert NotAnchoringAccount(enterprise, anchorer);

        address[] storage list = _anchorers[enterprise];
        uint256 idx = _anchorerIndex[anchorer] - 1;
        uint256 last = list.length - 1;
        if (idx != last) {
            address moved = list[last];
            list[idx] = moved;
            _anchorerIndex[moved] = idx + 1;
        }
        list.pop();
        delete _anchorerIndex[anchorer];
        delete _anchorerEnterprise[anchorer];
        emit AnchoringAccountRemoved(enterprise, anchorer);
    }

    // ----------------------------------------------------------------- persons
    /// @notice Register `person` (its own account) under the active `enterprise` with GB 26860 role
    /// flags (TICKET_ISSUER | PERMITTING_OFFICER | PERSON_IN_CHARGE | CREW_MEMBER) and a qualification.
    /// Callable by a governance admin or by the enterprise account itself, with the person's EIP-712
    /// `PersonRegistration` signature (65 bytes r||s||v, low s) valid until `deadline` (unix seconds).
    function registerPerson(
        address enterprise,
        address person,
        uint32 roles,
        string calldata qualification,
        uint256 deadline,
        bytes calldata signature
    ) external knownEnterprise(enterprise) {
        if (!isAdmin[msg.sender] && msg.sender != enterprise) revert NotAdminOrEnterprise(msg.sender, enterprise);
        if (!isActive(enterprise)) revert InactiveEnterprise(enterprise);
        if (person == address(0)) revert ZeroAddress();
        bytes32 structHash = keccak256(
            abi.encode(
                PERSON_REGISTRATION_TYPEHASH, enterprise, person, roles, keccak256(bytes(qualification)), deadline
            )
        );
        _checkSignature(person, structHash, deadline, signature);
        if (_persons[person].enterprise != address(0)) revert PersonExists(person);
        if (_enterprises[person].exists || _anchorerEnterprise[person] != address(0)) revert AccountIsPerson(person);
        if (roles == 0 || (roles & ~ALL_PERSON_ROLES) != 0) revert InvalidPersonRoles(roles);
        _persons[person] = Person({
            enterprise: enterprise,
            roles: roles,
            active: true,
            qualification: qualification,
            adminLocked: false,
            retired: false
        });
        _personsOf[enterprise].push(person);
        emit PersonRegistered(enterprise, person, roles, qualification);
    }

    /// @notice Change a person's roles, qualification and active flag (admin, or its active enterprise).
    /// An admin's deactivation locks the person: its enterprise cannot re-activate it. Retired persons
    /// cannot be changed.
    function updatePerson(address person, uint32 roles, string calldata qualification, bool active) external {
        Person storage p = _persons[person];
        if (p.enterprise == address(0)) revert UnknownPerson(person);
        if (p.retired) revert PersonIsRetired(person);
        bool admin = isAdmin[msg.sender];
        if (!admin && msg.sender != p.enterprise) revert NotAdminOrEnterprise(msg.sender, p.enterprise);
        if (!admin && !isActive(p.enterprise)) revert InactiveEnterprise(p.enterprise);
        if (roles == 0 || (roles & ~ALL_PERSON_ROLES) != 0) revert InvalidPersonRoles(roles);
        if (admin) {
            p.adminLocked = !active;
        } else if (active && p.adminLocked) {
            revert DeactivatedByAdmin(person);
        }
        p.roles = roles;
        p.qualification = qualification;
        p.active = active;
        emit PersonUpdated(person, roles, active, qualification);
    }

    /// @notice Retire a person for good (admin, or its active enterprise): never active again; its
    /// account stays reserved so its history keeps one meaning.
    function retirePerson(address person) external {
        Person storage p = _persons[person];
        if (p.enterprise == address(0)) revert UnknownPerson(person);
        if (p.retired) revert PersonIsRetired(person);
        bool admin = isAdmin[msg.sender];
        if (!admin && msg.sender != p.enterprise) revert NotAdminOrEnterprise(msg.sender, p.enterprise);
        if (!admin && !isActive(p.enterprise)) revert InactiveEnterprise(p.enterprise);
        p.retired = true;
        p.active = false;
        emit PersonRetired(person, msg.sender);
        emit PersonUpdated(person, p.roles, false, p.qualification);
    }

    /// @notice `(adminLocked, retired)` of a person.
    function personStatus(address person) external view returns (bool adminLocked, bool retired) {
        Person storage p = _persons[person];
        return (p.adminLocked, p.retired);
    }

    /// @notice EIP-712 domain separator of this contract on this chain.
    function domainSeparator() public view returns (bytes32) {
        return keccak256(
            abi.encode(
                DOMAIN_TYPEHASH, keccak256("TraceLedger EnterpriseRegistry"), keccak256("1"), block.chainid,
                address(this)
            )
        );
    }

    /// @notice A person's record; `enterprise == address(0)` when `person` is not registered.
    function getPerson(address person)
        external
        view
        returns (address enterprise, uint32 roles, string memory qualification, bool active)
    {
        Person storage p = _persons[person];
        return (p.enterprise, p.roles, p.qualification, p.active);
    }

    /// @notice True when `person` is registered, active, and its enterprise is active.
    function isActivePerson(address person) public view returns (bool) {
        Person storage p = _persons[person];
        return p.enterprise != address(0) && p.active && isActive(p.enterprise);
    }

    /// @notice True when `person` is an active person holding every flag in `role`.
    function hasPersonRole(address person, uint32 role) external view returns (bool) {
        return isActivePerson(person) && role != 0 && (_persons[person].roles & role) == role;
    }

    /// @notice Person accounts registered under `enterprise`.
    function personsOf(address enterprise) external view returns (address[] memory) {
        return _personsOf[enterprise];
    }

    /// @notice Transaction permissioning used by the validators: an admin, an active enterprise, one
    /// of its anchoring accounts, or one of its active persons.
    function isPermittedSender(address account) external view returns (bool) {
        if (isAdmin[account]) return true;
        address enterprise = enterpriseOfAnchorer(account);
        if (enterprise != address(0) && isActive(enterprise)) return true;
        return isActivePerson(account);
    }

    // ------------------------------------------------------------------ views
    function getEnterprise(address account)
        external
        view
        returns (string memory name, uint32 roles, string memory prefix, bool active, bool exists)
    {
        Enterprise storage e = _enterprises[account];
        return (e.name, e.roles, e.prefix, e.active, e.exists);
    }

    /// @notice True when `account` is a registered, active enterprise.
    function isActive(address account) public view returns (bool) {
        Enterprise storage e = _enterprises[account];
        return e.exists && e.active;
    }

    /// @notice Membership = registered and active enterprise.
    function isMember(address account) external view returns (bool) {
        return isActive(account);
    }

    /// @notice True when `account` has every flag in `role` and is an active enterprise.
    function hasRole(address account, uint32 role) external view returns (bool) {
        return isActive(account) && role != 0 && (_enterprises[account].roles & role) == role;
    }

    /// @notice Enterprise on whose behalf `account` anchors: the account itself if it is an
    /// enterprise, the owning enterprise for a dedicated anchoring account, else address(0).
    function enterpriseOfAnchorer(address account) public view returns (address) {
        if (_enterprises[account].exists) return account;
        return _anchorerEnterprise[account];
    }

    /// @notice True when `account` is an active enterprise or an anchoring account of one.
    function isActiveAnchorer(address account) external view returns (bool) {
        address enterprise = enterpriseOfAnchorer(account);
        return enterprise != address(0) && isActive(enterprise);
    }

    /// @notice Dedicated anchoring accounts of `enterprise` (the enterprise itself excluded).
    function anchoringAccounts(address enterprise) external view returns (address[] memory) {
        return _anchorers[enterprise];
    }

    /// @notice Enterprise account owning `prefix`, or address(0).
    function enterpriseByPrefix(string calldata prefix) external view returns (address) {
        return _prefixOwner[_prefixKey(bytes(prefix))];
    }

    function enterpriseCount() external view returns (uint256) {
        return _enterpriseList.length;
    }

    function enterpriseAt(uint256 index) external view returns (address) {
        if (index >= _enterpriseList.length) revert IndexOutOfRange(index, _enterpriseList.length);
        return _enterpriseList[index];
    }

    // --------------------------------------------------------------- internal
    function _approve(uint256 id) private {
        _approved[id][msg.sender] = true;
        _approvers[id].push(msg.sender);
        emit ProposalApproved(id, msg.sender);
    }

    function _setActive(address account, bool active) private knownEnterprise(account) {
        Enterprise storage e = _enterprises[account];
        e.active = active;
        emit EnterpriseUpdated(account, e.roles, active);
    }

    function _setRoles(address account, uint32 roles) private knownEnterprise(account) {
        _checkRoles(roles);
        Enterprise storage e = _enterprises[account];
        e.roles = roles;
        emit EnterpriseUpdated(account, roles, e.active);
    }

    function _setQuorum(uint256 newThreshold, uint256 delaySeconds) private {
        if (newThreshold == 0 || newThreshold > adminCount) revert InvalidThreshold(newThreshold, adminCount);
        if (delaySeconds > MAX_GOVERNANCE_DELAY) revert InvalidDelay(delaySeconds);
        threshold = newThreshold;
        governanceDelay = uint64(delaySeconds);
        emit QuorumChanged(newThreshold, uint64(delaySeconds));
    }

    function _removeAdmin(address account) private {
        if (!isAdmin[account]) revert UnknownAdmin(account);
        if (adminCount == 1) revert LastAdmin(account);
        if (adminCount - 1 < threshold) revert InvalidThreshold(threshold, adminCount - 1);
        isAdmin[account] = false;
        adminCount -= 1;
        emit AdminRemoved(account, msg.sender);
    }

    function _checkSignature(address signer, bytes32 structHash, uint256 deadline, bytes calldata signature)
        private
        view
    {
        if (block.timestamp > deadline) revert SignatureExpired(deadline);
        if (signature.length != 65) revert InvalidSignature();
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) v += 27;
        if ((v != 27 && v != 28) || uint256(s) > HALF_N) revert InvalidSignature();
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
        address recovered = ecrecover(digest, v, r, s);
        if (recovered == address(0)) revert InvalidSignature();
        if (recovered != signer) revert WrongSigner(signer, recovered);
    }

    function _addAdmin(address account) private {
        if (account == address(0)) revert ZeroAddress();
        if (isAdmin[account]) revert AlreadyAdmin(account);
        isAdmin[account] = true;
        adminCount += 1;
        emit AdminAdded(account, msg.sender);
    }

    function _prefixKey(bytes calldata p) private pure returns (bytes32) {
        bytes memory lower = p;
        for (uint256 i = 0; i < lower.length; ++i) {
            bytes1 c = lower[i];
            if (c >= "A" && c <= "Z") lower[i] = bytes1(uint8(c) + 32);
        }
        return keccak256(lower);
    }

    function _checkRoles(uint32 roles) private pure {
        if (roles == 0 || (roles & ~ALL_ROLES) != 0) revert InvalidRoles(roles);
    }

    /// @dev `88.<industry>.<enterprise>`: literal "88", then exactly two more non-empty
    /// dot-separated segments of ASCII letters, digits or '-'.
    function _validPrefix(bytes calldata p) private pure returns (bool) {
        uint256 n = p.length;
        if (n < 6 || n > MAX_PREFIX_LENGTH) return false;
        if (p[0] != "8" || p[1] != "8" || p[2] != ".") return false;
        uint256 dots = 0;
        uint256 segmentLength = 0;
        for (uint256 i = 3; i < n; ++i) {
            bytes1 c = p[i];
            if (c == ".") {
                if (segmentLength == 0) return false;
                dots += 1;
                segmentLength = 0;
            } else if (
                (c >= "0" && c <= "9") || (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c == "-"
            ) {
                segmentLength += 1;
            } else {
                return false;
            }
        }
        return dots == 1 && segmentLength != 0;
    }
}
